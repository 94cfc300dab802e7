//! The Notary part of /work/shared/conformance/README.md: Docker Hub trust
//! data for `docker.io/phbelitz/sample-image`, as served by notary.docker.io.

#[path = "notary_common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::*;
use portcullis_notary_tuf::{NotaryError, PinnedKey, RoleVersions, TargetQuery, verify_repository};

#[test]
fn tag_sign_resolves_to_signed_digest() {
    let repo = verify_hub(&hub_bytes(), hub_time()).unwrap();
    let t = repo.lookup(&tag("sign"), None).unwrap();
    assert_eq!(t.digest, HUB_SIGN);
    assert_eq!(t.name, "sign");
    assert_eq!(t.roles, vec!["targets".to_owned()]);
    assert_eq!(t.length, Some(1994));
}

#[test]
fn tag_v1_resolves_to_signed_digest() {
    let repo = verify_hub(&hub_bytes(), hub_time()).unwrap();
    assert_eq!(repo.lookup(&tag("v1"), None).unwrap().digest, HUB_V1);
}

#[test]
fn unknown_tag_is_not_signed() {
    let repo = verify_hub(&hub_bytes(), hub_time()).unwrap();
    let err = repo.lookup(&tag("no_tag"), None).unwrap_err();
    assert_eq!(err.reason_code(), "TAG_NOT_SIGNED");
    assert_eq!(err.detail(), "no_tag");
}

#[test]
fn tag_with_matching_digest_is_allowed() {
    let repo = verify_hub(&hub_bytes(), hub_time()).unwrap();
    let q = TargetQuery::tag_and_digest("sign", HUB_SIGN).unwrap();
    assert_eq!(repo.lookup(&q, None).unwrap().digest, HUB_SIGN);
}

#[test]
fn tag_with_other_digest_is_a_mismatch() {
    let repo = verify_hub(&hub_bytes(), hub_time()).unwrap();
    let q = TargetQuery::tag_and_digest("sign", HUB_V1).unwrap();
    let err = repo.lookup(&q, None).unwrap_err();
    assert_eq!(err.reason_code(), "DIGEST_MISMATCH");
    assert_eq!(
        err,
        NotaryError::DigestMismatch {
            expected: HUB_V1.to_owned(),
            signed: HUB_SIGN.to_owned()
        }
    );
}

#[test]
fn digest_only_lookup_names_the_tag() {
    let repo = verify_hub(&hub_bytes(), hub_time()).unwrap();
    let t = repo
        .lookup(&TargetQuery::digest(HUB_V1).unwrap(), None)
        .unwrap();
    assert_eq!(t.name, "v1");
    let unknown = format!("sha256:{}", "00".repeat(32));
    let err = repo
        .lookup(&TargetQuery::digest(&unknown).unwrap(), None)
        .unwrap_err();
    assert_eq!(err.reason_code(), "TAG_NOT_SIGNED");
    assert_eq!(err.detail(), unknown);
}

#[test]
fn a_different_pinned_key_is_a_root_key_mismatch() {
    let other = TestKey::ecdsa();
    let err = verify_repository(
        HUB_GUN,
        &other.pin(),
        None,
        &BTreeMap::new(),
        &hub_bytes(),
        &RoleVersions::new(),
        hub_time(),
    )
    .unwrap_err();
    assert_eq!(err.reason_code(), "ROOT_KEY_MISMATCH");
    assert_eq!(err.detail(), "root");
}

#[test]
fn the_targets_key_is_not_a_root_key() {
    // A key that is in root.json, but not in the root role.
    let root: serde_json::Value =
        serde_json::from_slice(&read("dockerhub-sample-image/root.json")).unwrap();
    let targets_id = root["signed"]["roles"]["targets"]["keyids"][0]
        .as_str()
        .unwrap();
    let b64 = root["signed"]["keys"][targets_id]["keyval"]["public"]
        .as_str()
        .unwrap();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    let err = verify_repository(
        HUB_GUN,
        &PinnedKey::from_pem(&pem).unwrap(),
        None,
        &BTreeMap::new(),
        &hub_bytes(),
        &RoleVersions::new(),
        hub_time(),
    )
    .unwrap_err();
    assert_eq!(err.reason_code(), "ROOT_KEY_MISMATCH");
}

#[test]
fn the_root_certificate_must_be_issued_for_the_gun() {
    let err = verify_repository(
        "docker.io/phbelitz/other-image",
        &hub_pin(),
        None,
        &BTreeMap::new(),
        &hub_bytes(),
        &RoleVersions::new(),
        hub_time(),
    )
    .unwrap_err();
    assert_eq!(err.reason_code(), "ROOT_KEY_MISMATCH");
    assert!(
        err.to_string().contains("docker.io/phbelitz/sample-image"),
        "{err}"
    );
}

#[test]
fn the_pin_may_be_given_as_the_certificate() {
    let root: serde_json::Value =
        serde_json::from_slice(&read("dockerhub-sample-image/root.json")).unwrap();
    let id = root["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap();
    let b64 = root["signed"]["keys"][id]["keyval"]["public"]
        .as_str()
        .unwrap();
    use base64::Engine as _;
    let cert_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(PinnedKey::from_pem(&cert_pem).unwrap(), hub_pin());
}

#[test]
fn today_the_timestamp_has_expired() {
    let err = verify_hub(&hub_bytes(), at("2026-11-24T00:00:00Z")).unwrap_err();
    assert_eq!(err.reason_code(), "EXPIRED");
    assert_eq!(err.detail(), "timestamp");
}

#[test]
fn expiry_boundaries() {
    // The timestamp expires at 2019-11-11T08:00:05.460814238Z.
    assert!(verify_hub(&hub_bytes(), at("2019-11-11T08:00:05.460814237Z")).is_ok());
    let err = verify_hub(&hub_bytes(), at("2019-11-11T08:00:05.460814238Z")).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("EXPIRED", "timestamp")
    );
    // Before the root certificate's notBefore (2019-08-29T12:12:02Z).
    let err = verify_hub(&hub_bytes(), at("2019-08-01T00:00:00Z")).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("EXPIRED", "root")
    );
}

#[test]
fn versions_and_expiries_are_reported() {
    let repo = verify_hub(&hub_bytes(), hub_time()).unwrap();
    let v: Vec<(&str, u64)> = repo.versions().iter().collect();
    assert_eq!(
        v,
        vec![
            ("root", 1),
            ("snapshot", 4),
            ("targets", 4),
            ("timestamp", 7)
        ]
    );
    assert_eq!(repo.trusted_root().version(), 1);
    assert_eq!(repo.earliest_expiry(), at("2019-11-11T08:00:05.460814238Z"));
    assert!(repo.declared_delegations().is_empty());
}

#[test]
fn rollback_against_remembered_versions() {
    let mut seen = RoleVersions::new();
    seen.set("timestamp", 8);
    let err = verify_repository(
        HUB_GUN,
        &hub_pin(),
        None,
        &BTreeMap::new(),
        &hub_bytes(),
        &seen,
        hub_time(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TRUST_DATA_ROLLBACK", "timestamp")
    );
    // Equal versions are fine.
    let mut seen = RoleVersions::new();
    for (r, v) in [
        ("root", 1),
        ("timestamp", 7),
        ("snapshot", 4),
        ("targets", 4),
    ] {
        seen.set(r, v);
    }
    verify_repository(
        HUB_GUN,
        &hub_pin(),
        None,
        &BTreeMap::new(),
        &hub_bytes(),
        &seen,
        hub_time(),
    )
    .unwrap();
    for (role, v) in [("snapshot", 5), ("targets", 5), ("root", 2)] {
        let mut seen = RoleVersions::new();
        seen.set(role, v);
        let err = verify_repository(
            HUB_GUN,
            &hub_pin(),
            None,
            &BTreeMap::new(),
            &hub_bytes(),
            &seen,
            hub_time(),
        )
        .unwrap_err();
        assert_eq!(
            (err.reason_code(), err.detail().as_str()),
            ("TRUST_DATA_ROLLBACK", role)
        );
    }
}

#[test]
fn missing_files_are_not_found() {
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let mut b = hub_bytes();
        match role {
            "root" => b.root.clear(),
            "timestamp" => b.timestamp.clear(),
            "snapshot" => b.snapshot.clear(),
            _ => b.targets.clear(),
        }
        let err = verify_hub(&b, hub_time()).unwrap_err();
        assert_eq!(
            (err.reason_code(), err.detail().as_str()),
            ("TRUST_DATA_NOT_FOUND", role)
        );
    }
}

#[test]
fn appended_bytes_break_the_listed_length() {
    // What the fixture proxy's `length-mismatch` mode does.
    let mut b = hub_bytes();
    b.targets.extend_from_slice(b"\n    \n");
    let err = verify_hub(&b, hub_time()).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "targets")
    );
    let mut b = hub_bytes();
    b.snapshot.extend_from_slice(b"\n    \n");
    let err = verify_hub(&b, hub_time()).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "snapshot")
    );
    let mut b = hub_bytes();
    b.root.extend_from_slice(b"\n    \n");
    let err = verify_hub(&b, hub_time()).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "root")
    );
}

/// Flip every byte of every file in several ways: the result is always an
/// error (never a panic, never an accept) that names the flipped file's role.
#[test]
fn every_flipped_byte_is_rejected_naming_the_role() {
    let base = hub_bytes();
    let mut runs = 0;
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let original = match role {
            "root" => &base.root,
            "timestamp" => &base.timestamp,
            "snapshot" => &base.snapshot,
            _ => &base.targets,
        };
        for i in 0..original.len() {
            for mask in [0x01u8, 0x20, 0xff] {
                let mut b = base.clone();
                let target = match role {
                    "root" => &mut b.root,
                    "timestamp" => &mut b.timestamp,
                    "snapshot" => &mut b.snapshot,
                    _ => &mut b.targets,
                };
                target[i] ^= mask;
                runs += 1;
                match verify_hub(&b, hub_time()) {
                    Ok(_) => panic!("{role}: byte {i} ^ {mask:#x} was accepted"),
                    Err(e) => assert_eq!(
                        e.role(),
                        Some(role),
                        "{role}: byte {i} ^ {mask:#x} gave {e} ({})",
                        e.reason_code()
                    ),
                }
            }
        }
    }
    assert!(runs > 12_000);
}

#[test]
fn error_texts_name_the_role() {
    let mut b = hub_bytes();
    let n = b.timestamp.len() - 10;
    b.timestamp[n] ^= 0x01;
    let err = verify_hub(&b, hub_time()).unwrap_err();
    assert_eq!(err.reason_code(), "SIGNATURE_INVALID");
    assert!(err.to_string().contains("timestamp"), "{err}");
}
