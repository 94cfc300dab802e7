//! Hand-made repositories (keys generated with aws-lc-rs; canonical JSON and
//! key ids from this crate, whose agreement with Go is established by
//! canonical_keyids.rs) for the cases the notary CLI cannot produce:
//! thresholds above 1, other key types, path restrictions, nested
//! delegations, expiry of each role, TUF-style versions in meta, malformed
//! input.

#[path = "notary_common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::*;
use portcullis_notary_tuf::{
    NotaryError, RoleVersions, TargetQuery, TrustedRoot, verify_repository,
};
use serde_json::{Value, json};

fn code(e: &NotaryError) -> (&'static str, String) {
    (e.reason_code(), e.detail())
}

#[test]
fn a_plain_repository_verifies() {
    let r = Repo::default();
    let repo = r.verify(&r.build()).unwrap();
    let t = repo.lookup(&tag("v1"), None).unwrap();
    assert_eq!(t.digest, format!("sha256:{}", digest_of("v1")));
}

#[test]
fn root_threshold_two() {
    let mut r = Repo {
        root_keys: vec![TestKey::ecdsa(), TestKey::ecdsa()],
        root_threshold: 2,
        root_signers: vec![0, 1],
        ..Repo::default()
    };
    r.verify(&r.build()).unwrap();
    r.root_signers = vec![0];
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("THRESHOLD_NOT_MET", "1 of 2".to_owned()));
    assert_eq!(err.role(), Some("root"));
    // The same key signing twice still counts once.
    r.root_signers = vec![0, 0];
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("THRESHOLD_NOT_MET", "1 of 2".to_owned()));
}

#[test]
fn the_pinned_root_key_must_have_signed() {
    let r = Repo {
        root_keys: vec![TestKey::ecdsa(), TestKey::ecdsa()],
        root_threshold: 1,
        root_signers: vec![1],
        ..Repo::default()
    };
    // Pin key 0, which is a root key, but only key 1 signed.
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "root".to_owned()));
    assert!(err.to_string().contains("pinned"), "{err}");
}

#[test]
fn targets_threshold_two() {
    let mut r = Repo {
        targets_keys: vec![TestKey::ecdsa(), TestKey::ed25519()],
        targets_threshold: 2,
        targets_signers: vec![0, 1],
        ..Repo::default()
    };
    r.verify(&r.build()).unwrap();
    r.targets_signers = vec![1];
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("THRESHOLD_NOT_MET", "1 of 2".to_owned()));
    assert_eq!(err.role(), Some("targets"));
    r.targets_signers = vec![];
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "targets".to_owned()));
}

#[test]
fn rsa_and_ed25519_keys() {
    let r = Repo {
        root_keys: vec![TestKey::rsa()],
        timestamp: TestKey::ed25519(),
        snapshot: TestKey::rsa(),
        targets_keys: vec![TestKey::ed25519()],
        ..Repo::default()
    };
    let repo = r.verify(&r.build()).unwrap();
    repo.lookup(&tag("v1"), None).unwrap();
}

#[test]
fn rsa_pkcs1v15_signatures() {
    // TestKey signs PSS; make a PKCS#1 v1.5 signature by hand.
    let r = Repo {
        targets_keys: vec![TestKey::rsa()],
        ..Repo::default()
    };
    let mut b = r.build();
    let doc: Value = serde_json::from_slice(&b.targets).unwrap();
    let msg = portcullis_notary_tuf::canonical::canonicalize(&doc["signed"]).unwrap();
    let common::Priv::Rsa(pair) = &r.targets_keys[0].private else {
        unreachable!()
    };
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &msg,
        &mut sig,
    )
    .unwrap();
    use base64::Engine as _;
    let sig_json = json!({"keyid": r.targets_keys[0].id, "method": "rsapkcs1v15",
        "sig": base64::engine::general_purpose::STANDARD.encode(&sig)});
    b.targets = envelope(&doc["signed"], vec![sig_json.clone()]);
    // The snapshot pins the old targets bytes: rebuild snapshot/timestamp.
    let rebuilt = rebuild_meta(&r, &b);
    r.verify(&rebuilt).unwrap();
    // The same bytes claimed as PSS do not verify.
    let mut pss = sig_json;
    pss["method"] = "rsapss".into();
    b.targets = envelope(&doc["signed"], vec![pss]);
    let err = r.verify(&rebuild_meta(&r, &b)).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "targets".to_owned()));
}

/// Re-sign snapshot and timestamp over the current targets/root bytes.
fn rebuild_meta(
    r: &Repo,
    b: &portcullis_notary_tuf::RoleBytes,
) -> portcullis_notary_tuf::RoleBytes {
    let mut meta = serde_json::Map::new();
    meta.insert("root".into(), file_meta(&b.root));
    meta.insert("targets".into(), file_meta(&b.targets));
    for (name, bytes) in &b.delegations {
        meta.insert(name.clone(), file_meta(bytes));
    }
    let snapshot = sign_doc(
        &json!({"_type": "Snapshot", "expires": FAR, "meta": meta, "version": 1}),
        &[&r.snapshot],
    );
    let timestamp = sign_doc(
        &json!({"_type": "Timestamp", "expires": FAR, "meta": {"snapshot": file_meta(&snapshot)}, "version": 1}),
        &[&r.timestamp],
    );
    portcullis_notary_tuf::RoleBytes {
        snapshot,
        timestamp,
        ..b.clone()
    }
}

#[test]
fn an_rsa_root_key_can_be_pinned() {
    let r = Repo {
        root_keys: vec![TestKey::rsa()],
        ..Repo::default()
    };
    r.verify(&r.build()).unwrap();
    let other = Repo::default();
    let err = verify_repository(
        "example.com/hand/made",
        &other.root_keys[0].pin(),
        None,
        &BTreeMap::new(),
        &r.build(),
        &RoleVersions::new(),
        at(NOW),
    )
    .unwrap_err();
    assert_eq!(err.reason_code(), "ROOT_KEY_MISMATCH");
}

#[test]
fn each_role_expires() {
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let mut r = Repo::default();
        r.expires.insert(role, PAST.to_owned());
        let err = r.verify(&r.build()).unwrap_err();
        assert_eq!(code(&err), ("EXPIRED", role.to_owned()));
    }
    // Exactly at the evaluation time counts as expired.
    let mut r = Repo::default();
    r.expires.insert("snapshot", NOW.to_owned());
    assert_eq!(
        code(&r.verify(&r.build()).unwrap_err()),
        ("EXPIRED", "snapshot".to_owned())
    );
}

#[test]
fn expiry_is_checked_in_tuf_order() {
    // Everything expired: root is reported first.
    let mut r = Repo::default();
    for role in ["root", "timestamp", "snapshot", "targets"] {
        r.expires.insert(role, PAST.to_owned());
    }
    assert_eq!(code(&r.verify(&r.build()).unwrap_err()).1, "root");
    r.expires.remove("root");
    assert_eq!(code(&r.verify(&r.build()).unwrap_err()).1, "timestamp");
}

#[test]
fn tuf_style_versions_in_meta_must_match() {
    let mut r = Repo {
        edit_timestamp: Some(Box::new(|v: &mut Value| {
            v["meta"]["snapshot"]["version"] = 2.into()
        })),
        ..Repo::default()
    };
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("HASH_MISMATCH", "snapshot".to_owned()));
    assert!(err.to_string().contains("version"), "{err}");

    r.edit_timestamp = Some(Box::new(|v: &mut Value| {
        v["meta"]["snapshot"]["version"] = 1.into()
    }));
    r.verify(&r.build()).unwrap();

    r.edit_snapshot = Some(Box::new(|v: &mut Value| {
        v["meta"]["targets"]["version"] = 7.into()
    }));
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("HASH_MISMATCH", "targets".to_owned()));

    // A version listed in the snapshot below the remembered one is a rollback.
    r.edit_snapshot = Some(Box::new(|v: &mut Value| {
        v["meta"]["targets"]["version"] = 1.into()
    }));
    let mut seen = RoleVersions::new();
    seen.set("targets", 3);
    let err = verify_repository(
        "example.com/hand/made",
        &r.root_keys[0].pin(),
        None,
        &BTreeMap::new(),
        &r.build(),
        &seen,
        at(NOW),
    )
    .unwrap_err();
    assert_eq!(code(&err), ("TRUST_DATA_ROLLBACK", "targets".to_owned()));
}

#[test]
fn signatures_by_keys_outside_the_role_do_not_count() {
    let r = Repo::default();
    let mut b = r.build();
    // Targets signed by the snapshot key instead.
    let doc: Value = serde_json::from_slice(&b.targets).unwrap();
    b.targets = sign_doc(&doc["signed"], &[&r.snapshot]);
    let err = r.verify(&rebuild_meta(&r, &b)).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "targets".to_owned()));
}

#[test]
fn methods_must_be_exact() {
    let mut key = TestKey::ecdsa();
    key.method = "ECDSA".to_owned();
    let r = Repo {
        timestamp: key,
        ..Repo::default()
    };
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "timestamp".to_owned()));
}

#[test]
fn a_key_listed_under_a_wrong_id_does_not_count() {
    // The builder lists the timestamp key (in keys, in the timestamp role and
    // in the signature) under an id that is not its content hash.
    let mut r = Repo::default();
    r.timestamp.id = "00".repeat(32);
    let err = r.verify(&r.build()).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "timestamp".to_owned()));
}

#[test]
fn structural_errors_are_malformed() {
    let r = Repo {
        edit_timestamp: Some(Box::new(|v: &mut Value| v["_type"] = "Snapshot".into())),
        ..Repo::default()
    };
    let err = r.verify(&r.build()).unwrap_err();
    assert!(matches!(err, NotaryError::Malformed { .. }), "{err:?}");
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "timestamp".to_owned()));

    let r = Repo {
        edit_root: Some(Box::new(|v: &mut Value| {
            v["roles"].as_object_mut().unwrap().remove("timestamp");
        })),
        ..Repo::default()
    };
    assert_eq!(
        code(&r.verify(&r.build()).unwrap_err()),
        ("SIGNATURE_INVALID", "root".to_owned())
    );

    let r = Repo {
        edit_root: Some(Box::new(|v: &mut Value| {
            v["roles"]["targets"]["threshold"] = 0.into()
        })),
        ..Repo::default()
    };
    assert_eq!(
        code(&r.verify(&r.build()).unwrap_err()),
        ("SIGNATURE_INVALID", "root".to_owned())
    );

    let r = Repo {
        edit_root: Some(Box::new(|v: &mut Value| {
            v["roles"]["targets"]["keyids"] = json!(["ab"])
        })),
        ..Repo::default()
    };
    assert_eq!(
        code(&r.verify(&r.build()).unwrap_err()),
        ("SIGNATURE_INVALID", "root".to_owned())
    );
}

#[test]
fn non_canonicalisable_values_are_malformed() {
    // A float, a string that NFC would change, a raw control character
    // (escaped in the JSON text, raw in Go's canonical form): refused rather
    // than verified under a canonical form Go would not have signed.
    let r = Repo::default();
    let b = r.build();
    for bad in ["1.5", r#""e\u0301""#, r#""a\u0001b""#] {
        let text = String::from_utf8(b.timestamp.clone()).unwrap();
        let tampered = text.replacen(
            "{\"signed\":{",
            &format!("{{\"signed\":{{\"custom\":{bad},"),
            1,
        );
        let mut b2 = b.clone();
        b2.timestamp = tampered.into_bytes();
        let err = r.verify(&b2).unwrap_err();
        assert!(
            matches!(err, NotaryError::Malformed { .. }),
            "{bad}: {err:?}"
        );
        assert_eq!(err.role(), Some("timestamp"));
    }
}

#[test]
fn target_without_sha256_is_malformed_at_lookup() {
    let r = Repo {
        targets: json!({"v1": {"hashes": {"sha512": "AAAA"}, "length": 1}}),
        ..Repo::default()
    };
    let repo = r.verify(&r.build()).unwrap();
    let err = repo.lookup(&tag("v1"), None).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "targets".to_owned()));
}

// ---------------------------------------------------------------- delegations

/// targets → releases (paths given) → optional nested roles.
fn delegating_repo(release_paths: &[&str], release_targets: Value) -> Repo {
    let releases_key = TestKey::ecdsa();
    let delegations = json!({
        "keys": keys_obj(&[&releases_key]),
        "roles": [role_decl("targets/releases", &[&releases_key], 1, release_paths)],
    });
    Repo {
        targets: json!({"top": target(&digest_of("top"), 1)}),
        delegations: Some(delegations),
        delegated: vec![(
            "targets/releases".into(),
            delegated_targets(release_targets, None),
            vec![0],
        )],
        delegation_keys: vec![releases_key],
        ..Repo::default()
    }
}

#[test]
fn delegation_paths_are_prefixes() {
    let r = delegating_repo(
        &["v1"],
        json!({"v1.2": target(&digest_of("a"), 1), "latest": target(&digest_of("b"), 1)}),
    );
    let repo = r.verify(&r.build()).unwrap();
    repo.lookup(&tag("v1.2"), None).unwrap();
    let err = repo.lookup(&tag("latest"), None).unwrap_err();
    assert_eq!(code(&err), ("TAG_NOT_SIGNED", "latest".to_owned()));
    let err = repo
        .lookup(&tag("latest"), Some(&names(&["releases"])))
        .unwrap_err();
    assert_eq!(code(&err), ("DELEGATION_MISSING", "releases".to_owned()));
    // A digest-only lookup does not find targets outside the paths either.
    let q = TargetQuery::digest(&format!("sha256:{}", digest_of("b"))).unwrap();
    assert_eq!(
        repo.lookup(&q, None).unwrap_err().reason_code(),
        "TAG_NOT_SIGNED"
    );
}

#[test]
fn empty_paths_allow_nothing_and_the_empty_prefix_allows_all() {
    let r = delegating_repo(&[], json!({"v1": target(&digest_of("a"), 1)}));
    let repo = r.verify(&r.build()).unwrap();
    assert_eq!(
        repo.lookup(&tag("v1"), None).unwrap_err().reason_code(),
        "TAG_NOT_SIGNED"
    );
    let r = delegating_repo(&[""], json!({"v1": target(&digest_of("a"), 1)}));
    r.verify(&r.build())
        .unwrap()
        .lookup(&tag("v1"), None)
        .unwrap();
}

#[test]
fn nested_delegations_are_restricted_by_their_parents() {
    let qa_key = TestKey::ecdsa();
    let mut r = delegating_repo(&["v"], json!({}));
    let releases_delegations = json!({
        "keys": keys_obj(&[&qa_key]),
        "roles": [role_decl("targets/releases/qa", &[&qa_key], 1, &["v1", "w"])],
    });
    r.delegated[0].1 = delegated_targets(json!({}), Some(releases_delegations));
    r.delegation_keys.push(qa_key);
    r.delegated.push((
        "targets/releases/qa".into(),
        delegated_targets(
            json!({"v1-rc": target(&digest_of("rc"), 1), "w1": target(&digest_of("w"), 1)}),
            None,
        ),
        vec![1],
    ));
    let repo = r.verify(&r.build()).unwrap();
    assert_eq!(
        repo.declared_delegations(),
        ["targets/releases", "targets/releases/qa"]
    );
    let t = repo
        .lookup(&tag("v1-rc"), Some(&names(&["releases/qa"])))
        .unwrap();
    assert_eq!(t.roles, ["targets/releases/qa"]);
    // qa lists "v1" and "w", but its parent only allows "v…".
    let err = repo
        .lookup(&tag("w1"), Some(&names(&["releases/qa"])))
        .unwrap_err();
    assert_eq!(code(&err), ("DELEGATION_MISSING", "releases/qa".to_owned()));
}

#[test]
fn a_nested_catch_all_under_a_restricted_parent_allows_nothing() {
    // Notary's RestrictDelegationPathPrefixes keeps only the child's paths
    // that extend one of the parent's: "" under ["v"] is dropped, not narrowed.
    let qa_key = TestKey::ecdsa();
    let mut r = delegating_repo(&["v"], json!({}));
    r.delegated[0].1 = delegated_targets(
        json!({}),
        Some(json!({
            "keys": keys_obj(&[&qa_key]),
            "roles": [role_decl("targets/releases/qa", &[&qa_key], 1, &[""])],
        })),
    );
    r.delegation_keys.push(qa_key);
    r.delegated.push((
        "targets/releases/qa".into(),
        delegated_targets(json!({"v1": target(&digest_of("v1"), 1)}), None),
        vec![1],
    ));
    let repo = r.verify(&r.build()).unwrap();
    let err = repo
        .lookup(&tag("v1"), Some(&names(&["releases/qa"])))
        .unwrap_err();
    assert_eq!(code(&err), ("DELEGATION_MISSING", "releases/qa".to_owned()));
}

#[test]
fn a_nested_role_must_be_a_direct_child() {
    let bad_key = TestKey::ecdsa();
    let mut r = delegating_repo(&[""], json!({}));
    let releases_delegations = json!({
        "keys": keys_obj(&[&bad_key]),
        "roles": [role_decl("targets/alice", &[&bad_key], 1, &[""])],
    });
    r.delegated[0].1 = delegated_targets(json!({}), Some(releases_delegations));
    let repo = r.verify(&r.build()).unwrap();
    let err = repo.lookup(&tag("x"), None).unwrap_err();
    assert_eq!(
        code(&err),
        ("SIGNATURE_INVALID", "targets/releases".to_owned())
    );
    assert!(matches!(err, NotaryError::Malformed { .. }));
}

#[test]
fn delegation_signature_and_threshold() {
    // Signed by a key that is not the declared one.
    let mut r = delegating_repo(&[""], json!({"v1": target(&digest_of("a"), 1)}));
    r.delegation_keys.push(TestKey::ecdsa());
    r.delegated[0].2 = vec![1];
    let repo = r.verify(&r.build()).unwrap();
    let err = repo.lookup(&tag("v1"), None).unwrap_err();
    assert_eq!(
        code(&err),
        ("SIGNATURE_INVALID", "targets/releases".to_owned())
    );

    // Threshold 2 with two keys, one signature.
    let k1 = TestKey::ecdsa();
    let k2 = TestKey::ecdsa();
    let mut r = delegating_repo(&[""], json!({"v1": target(&digest_of("a"), 1)}));
    r.delegations = Some(json!({
        "keys": keys_obj(&[&k1, &k2]),
        "roles": [role_decl("targets/releases", &[&k1, &k2], 2, &[""])],
    }));
    r.delegation_keys = vec![k1, k2];
    r.delegated[0].2 = vec![0];
    let repo = r.verify(&r.build()).unwrap();
    let err = repo.lookup(&tag("v1"), None).unwrap_err();
    assert_eq!(code(&err), ("THRESHOLD_NOT_MET", "1 of 2".to_owned()));
    assert_eq!(err.role(), Some("targets/releases"));
    r.delegated[0].2 = vec![0, 1];
    r.verify(&r.build())
        .unwrap()
        .lookup(&tag("v1"), None)
        .unwrap();
}

#[test]
fn a_delegation_not_in_the_snapshot_is_refused() {
    let r = delegating_repo(&[""], json!({"v1": target(&digest_of("a"), 1)}));
    let mut b = r.build();
    let releases = b.delegations.remove("targets/releases").unwrap();
    b = rebuild_meta(&r, &b); // snapshot without targets/releases
    b.delegations.insert("targets/releases".into(), releases);
    let repo = r.verify(&b).unwrap();
    let err = repo.lookup(&tag("v1"), None).unwrap_err();
    assert_eq!(code(&err), ("HASH_MISMATCH", "targets/releases".to_owned()));
}

#[test]
fn an_expired_delegation_fails_its_lookups() {
    let mut r = delegating_repo(&[""], json!({"v1": target(&digest_of("a"), 1)}));
    r.delegated[0].1["expires"] = PAST.into();
    let repo = r.verify(&r.build()).unwrap();
    let err = repo.lookup(&tag("v1"), None).unwrap_err();
    assert_eq!(code(&err), ("EXPIRED", "targets/releases".to_owned()));
    // The top-level role is still usable explicitly.
    repo.lookup(&tag("top"), Some(&names(&["targets"])))
        .unwrap();
}

#[test]
fn invalid_delegation_declarations_make_targets_malformed() {
    for name in ["releases", "targets/Releases", "targets/a/../b", "targets/"] {
        let mut r = delegating_repo(&[""], json!({}));
        r.delegations.as_mut().unwrap()["roles"][0]["name"] = name.into();
        r.delegated.clear();
        let err = r.verify(&r.build()).unwrap_err();
        assert_eq!(
            code(&err),
            ("SIGNATURE_INVALID", "targets".to_owned()),
            "{name}"
        );
    }
    // Unknown key id in a declaration.
    let mut r = delegating_repo(&[""], json!({}));
    r.delegations.as_mut().unwrap()["roles"][0]["keyids"] = json!(["ff"]);
    r.delegated.clear();
    assert_eq!(r.verify(&r.build()).unwrap_err().role(), Some("targets"));
}

#[test]
fn without_releases_the_top_level_role_is_used() {
    let alice = TestKey::ecdsa();
    let r = Repo {
        delegations: Some(json!({
            "keys": keys_obj(&[&alice]),
            "roles": [role_decl("targets/alice", &[&alice], 1, &[""])],
        })),
        ..Repo::default()
    };
    let repo = r.verify(&r.build()).unwrap();
    assert_eq!(repo.lookup(&tag("v1"), None).unwrap().roles, ["targets"]);
}

// ------------------------------------------------- root certificates (real)

/// A root whose root key is the real notary CLI root key and certificate
/// (CN = registry.test/portcullis/app, valid from 2026-11-24T17:02:43Z).
fn cert_root_repo() -> Repo {
    let root: Value = serde_json::from_slice(&read("notary-cli/s2/root.json")).unwrap();
    let id = root["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD
        .decode(
            root["signed"]["keys"][&id]["keyval"]["public"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let pem = String::from_utf8(read("notary-cli/keys/root-old.pk8.pem")).unwrap();
    let key = TestKey::from_pkcs8_pem(&pem, "ecdsa-x509", public);
    assert_eq!(key.id, id);
    Repo {
        root_keys: vec![key],
        ..Repo::default()
    }
}

#[test]
fn certificate_root_keys_are_bound_to_the_gun_and_their_validity() {
    let r = cert_root_repo();
    let b = r.build();
    r.verify_gun(CLI_GUN, &b).unwrap();
    let err = r
        .verify_gun("registry.test/portcullis/other", &b)
        .unwrap_err();
    assert_eq!(err.reason_code(), "ROOT_KEY_MISMATCH");
    let early = verify_repository(
        CLI_GUN,
        &r.root_keys[0].pin(),
        None,
        &BTreeMap::new(),
        &b,
        &RoleVersions::new(),
        at("2026-11-24T17:00:00Z"),
    )
    .unwrap_err();
    assert!(
        matches!(early, NotaryError::CertificateNotValid { .. }),
        "{early:?}"
    );
    assert_eq!(code(&early), ("EXPIRED", "root".to_owned()));
}

#[test]
fn trusted_root_round_trip_and_same_version_check() {
    let r = Repo::default();
    let b = r.build();
    let repo = r.verify(&b).unwrap();
    let trusted = TrustedRoot::from_bytes(repo.trusted_root().as_bytes()).unwrap();
    assert_eq!(trusted.version(), 1);
    // A different repository's v1 root is not signed by the trusted root.
    let other = Repo::default().build();
    let err = verify_repository(
        "example.com/hand/made",
        &r.root_keys[0].pin(),
        Some(&trusted),
        &BTreeMap::new(),
        &other,
        &RoleVersions::new(),
        at(NOW),
    )
    .unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "root".to_owned()));
}

#[test]
fn rotation_with_generated_keys() {
    // v1 (key A) → v2 (key B, signed by A and B) → v3 (key C, signed by B only).
    let a = TestKey::ecdsa();
    let b_key = TestKey::ecdsa();
    let c = TestKey::ecdsa();
    let base = Repo::default();
    let root_with = |key: &TestKey, version: u64| {
        let mut v = base.root_signed();
        let old_root_id = base.root_keys[0].id.clone();
        v["keys"].as_object_mut().unwrap().remove(&old_root_id);
        v["keys"][&key.id] = key.json();
        v["roles"]["root"]["keyids"] = json!([key.id]);
        v["version"] = version.into();
        v
    };
    let v1 = sign_doc(&root_with(&a, 1), &[&a]);
    let v2 = sign_doc(&root_with(&b_key, 2), &[&a, &b_key]);
    let v3_good = sign_doc(&root_with(&c, 3), &[&b_key, &c]);
    let v3_bad = sign_doc(&root_with(&c, 3), &[&c]);
    let trusted = TrustedRoot::from_bytes(&v1).unwrap();

    let served = |root: Vec<u8>| {
        let mut b = base.build();
        b.root = root;
        rebuild_meta(&base, &b)
    };
    let mut inter = BTreeMap::new();
    inter.insert(2, v2.clone());
    let run = |root: Vec<u8>, inter: &BTreeMap<u64, Vec<u8>>| {
        verify_repository(
            "example.com/hand/made",
            &a.pin(),
            Some(&trusted),
            inter,
            &served(root),
            &RoleVersions::new(),
            at(NOW),
        )
    };
    assert_eq!(
        run(v3_good.clone(), &inter)
            .unwrap()
            .trusted_root()
            .version(),
        3
    );
    let err = run(v3_bad, &inter).unwrap_err();
    assert_eq!(code(&err), ("SIGNATURE_INVALID", "root".to_owned()));
    // v2 signed by B only (not by the trusted A) breaks the chain at 2.
    inter.insert(2, sign_doc(&root_with(&b_key, 2), &[&b_key]));
    let err = run(v3_good, &inter).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn a_failed_parent_is_reported_for_its_children() {
    let qa_key = TestKey::ecdsa();
    let mut r = delegating_repo(&[""], json!({}));
    r.delegated[0].1 = delegated_targets(
        json!({}),
        Some(json!({
            "keys": keys_obj(&[&qa_key]),
            "roles": [role_decl("targets/releases/qa", &[&qa_key], 1, &[""])],
        })),
    );
    r.delegated[0].1["expires"] = PAST.into();
    let repo = r.verify(&r.build()).unwrap();
    let err = repo
        .lookup(&tag("v1"), Some(&names(&["releases/qa"])))
        .unwrap_err();
    assert_eq!(code(&err), ("EXPIRED", "targets/releases".to_owned()));
}

#[test]
fn delegation_bytes_may_be_keyed_by_short_name() {
    let r = delegating_repo(&[""], json!({"v1": target(&digest_of("a"), 1)}));
    let mut b = r.build();
    let releases = b.delegations.remove("targets/releases").unwrap();
    b.delegations.insert("releases".into(), releases);
    r.verify(&b).unwrap().lookup(&tag("v1"), None).unwrap();
}

#[test]
fn listing_a_role_twice_counts_it_once() {
    let r = delegating_repo(&[""], json!({"v1": target(&digest_of("a"), 1)}));
    let repo = r.verify(&r.build()).unwrap();
    let t = repo
        .lookup(&tag("v1"), Some(&names(&["releases", "targets/releases"])))
        .unwrap();
    assert_eq!(t.roles, ["targets/releases"]);
}

#[test]
fn p384_raw_signatures_verify() {
    use base64::Engine as _;
    let sample: Value = serde_json::from_slice(&read("p384/sample.json")).unwrap();
    let key: portcullis_notary_tuf::model::KeyJson =
        serde_json::from_value(sample["key"].clone()).unwrap();
    let key = portcullis_notary_tuf::keys::TufKey::parse(&key).unwrap();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sample["sig"].as_str().unwrap())
        .unwrap();
    let msg = sample["message"].as_str().unwrap().as_bytes();
    assert!(key.verify("ecdsa", &sig, msg));
    let mut bad = sig.clone();
    bad[10] ^= 1;
    assert!(!key.verify("ecdsa", &bad, msg));
    assert!(!key.verify("ecdsa", &sig[..64], msg));
    assert!(!key.verify("rsapss", &sig, msg));
}
