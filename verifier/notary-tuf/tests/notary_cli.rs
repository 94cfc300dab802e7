//! Trust data made by the real notary CLI against a real notary-server (see
//! testdata/notary-cli/README.md): delegations `targets/releases` (x509
//! certificate key) and `targets/alice` (bare ecdsa key), rollbacks, length
//! mismatches, and a real root rotation.

#[path = "notary_common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::*;
use portcullis_notary_tuf::{
    DelegationStatus, NotaryError, RoleVersions, TargetQuery, TrustedRoot, peek_version,
    verify_repository,
};
use serde_json::Value;

fn s2() -> portcullis_notary_tuf::VerifiedRepo {
    verify_cli(&cli_bytes("s2"), &cli_pin_old(), &RoleVersions::new()).unwrap()
}

#[test]
fn all_captured_states_verify() {
    verify_cli(&cli_bytes("s1"), &cli_pin_old(), &RoleVersions::new()).unwrap();
    let repo = s2();
    assert_eq!(
        repo.declared_delegations(),
        ["targets/releases", "targets/alice"]
    );
    assert_eq!(
        repo.delegation_status("targets/releases"),
        Some(DelegationStatus::Verified)
    );
    assert_eq!(
        repo.delegation_status("targets/alice"),
        Some(DelegationStatus::Verified)
    );
    let v: Vec<(&str, u64)> = repo.versions().iter().collect();
    assert_eq!(
        v,
        vec![
            ("root", 2),
            ("snapshot", 9),
            ("targets", 4),
            ("targets/alice", 2),
            ("targets/releases", 3),
            ("timestamp", 8)
        ]
    );
    verify_cli(&cli_bytes("s3"), &cli_pin_new(), &RoleVersions::new()).unwrap();
}

#[test]
fn docker_convention_uses_targets_releases() {
    let repo = s2();
    let t = repo.lookup(&tag("v1"), None).unwrap();
    assert_eq!(t.digest, cli_digest("v1", "targets/releases"));
    assert_eq!(t.roles, ["targets/releases"]);
    // `top` is only in the top-level targets: with delegations present the
    // Docker convention does not look there.
    let err = repo.lookup(&tag("top"), None).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TAG_NOT_SIGNED", "top")
    );
    // Asking for the top-level role explicitly finds it.
    let t = repo
        .lookup(&tag("top"), Some(&names(&["targets"])))
        .unwrap();
    assert_eq!(t.digest, cli_digest("top", "targets"));
}

#[test]
fn every_required_delegation_must_sign() {
    let repo = s2();
    let both = repo
        .lookup(&tag("both"), Some(&names(&["releases", "alice"])))
        .unwrap();
    assert_eq!(both.digest, cli_digest("both", "targets/releases"));
    assert_eq!(both.roles, ["targets/releases", "targets/alice"]);
    // Full names work too.
    repo.lookup(&tag("both"), Some(&names(&["targets/alice"])))
        .unwrap();

    let err = repo
        .lookup(&tag("v1"), Some(&names(&["releases", "alice"])))
        .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("DELEGATION_MISSING", "alice")
    );

    let err = repo
        .lookup(&tag("v1"), Some(&names(&["releases", "bob"])))
        .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("DELEGATION_MISSING", "bob")
    );
    assert!(err.to_string().contains("not declared"), "{err}");
}

#[test]
fn an_unpublished_delegation_signs_nothing() {
    // In s1 only releases has signed anything; alice.json is a 404.
    let repo = verify_cli(&cli_bytes("s1"), &cli_pin_old(), &RoleVersions::new()).unwrap();
    assert_eq!(
        repo.delegation_status("targets/alice"),
        Some(DelegationStatus::Unpublished)
    );
    let err = repo
        .lookup(&tag("v1"), Some(&names(&["releases", "alice"])))
        .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("DELEGATION_MISSING", "alice")
    );
    repo.lookup(&tag("v1"), Some(&names(&["releases"])))
        .unwrap();
}

#[test]
fn a_listed_but_unfetched_delegation_is_not_found() {
    let mut b = cli_bytes("s2");
    b.delegations.remove("targets/alice");
    let repo = verify_cli(&b, &cli_pin_old(), &RoleVersions::new()).unwrap();
    assert_eq!(
        repo.delegation_status("targets/alice"),
        Some(DelegationStatus::NotFetched)
    );
    let err = repo
        .lookup(&tag("both"), Some(&names(&["releases", "alice"])))
        .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TRUST_DATA_NOT_FOUND", "targets/alice")
    );
    // A policy that does not need alice is unaffected.
    repo.lookup(&tag("both"), None).unwrap();
}

#[test]
fn disagreeing_delegations_are_ambiguous() {
    let repo = s2();
    let err = repo
        .lookup(&tag("split"), Some(&names(&["releases", "alice"])))
        .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("AMBIGUOUS_DIGEST", "split")
    );
    // Each alone is fine, with its own digest.
    assert_eq!(
        repo.lookup(&tag("split"), Some(&names(&["alice"])))
            .unwrap()
            .digest,
        cli_digest("split", "targets/alice")
    );
    assert_eq!(
        repo.lookup(&tag("split"), None).unwrap().digest,
        cli_digest("split", "targets/releases")
    );
}

#[test]
fn tag_and_digest_through_delegations() {
    let repo = s2();
    let d = cli_digest("v1", "targets/releases");
    repo.lookup(&TargetQuery::tag_and_digest("v1", &d).unwrap(), None)
        .unwrap();
    let other = cli_digest("both", "targets/releases");
    let err = repo
        .lookup(&TargetQuery::tag_and_digest("v1", &other).unwrap(), None)
        .unwrap_err();
    assert_eq!(err.reason_code(), "DIGEST_MISMATCH");
    let t = repo
        .lookup(&TargetQuery::digest(&d).unwrap(), None)
        .unwrap();
    assert_eq!(t.name, "v1");
}

#[test]
fn replaying_older_metadata_is_a_rollback() {
    // A client that saw s2 is served s1 (all of it, consistently signed).
    let seen = s2().versions().clone();
    let err = verify_cli(&cli_bytes("s1"), &cli_pin_old(), &seen).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TRUST_DATA_ROLLBACK", "timestamp")
    );
    assert_eq!(
        err,
        NotaryError::TrustDataRollback {
            role: "timestamp".into(),
            served: 4,
            seen: 8
        }
    );
    // The same data with remembered versions is fine.
    verify_cli(&cli_bytes("s2"), &cli_pin_old(), &seen).unwrap();
}

#[test]
fn rollback_of_each_role_is_detected() {
    for (role, seen_version) in [("snapshot", 10), ("targets", 5)] {
        let mut seen = RoleVersions::new();
        seen.set(role, seen_version);
        let err = verify_cli(&cli_bytes("s2"), &cli_pin_old(), &seen).unwrap_err();
        assert_eq!(
            (err.reason_code(), err.detail().as_str()),
            ("TRUST_DATA_ROLLBACK", role)
        );
    }
    // A delegation rollback fails lookups that need it.
    let mut seen = RoleVersions::new();
    seen.set("targets/releases", 4);
    let repo = verify_cli(&cli_bytes("s2"), &cli_pin_old(), &seen).unwrap();
    let err = repo.lookup(&tag("v1"), None).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TRUST_DATA_ROLLBACK", "targets/releases")
    );
    assert_eq!(
        repo.versions().get("targets/releases"),
        Some(4),
        "a failed role keeps its remembered version"
    );
    repo.lookup(&tag("both"), Some(&names(&["alice"]))).unwrap();
}

#[test]
fn mixing_files_from_different_states_fails_the_hash_checks() {
    let mut b = cli_bytes("s2");
    b.snapshot = read("notary-cli/s1/snapshot.json");
    let err = verify_cli(&b, &cli_pin_old(), &RoleVersions::new()).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "snapshot")
    );

    let mut b = cli_bytes("s2");
    b.targets = read("notary-cli/s1/targets.json");
    let err = verify_cli(&b, &cli_pin_old(), &RoleVersions::new()).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "targets")
    );

    let mut b = cli_bytes("s2");
    b.delegations.insert(
        "targets/releases".into(),
        read("notary-cli/s1/targets/releases.json"),
    );
    let repo = verify_cli(&b, &cli_pin_old(), &RoleVersions::new()).unwrap();
    let err = repo.lookup(&tag("v1"), None).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "targets/releases")
    );
}

#[test]
fn snapshot_meta_length_mismatch() {
    // The fixture proxy's `length-mismatch` mode: 6 bytes appended, still JSON.
    for role in ["targets", "snapshot", "targets/releases"] {
        let mut b = cli_bytes("s2");
        match role {
            "targets" => b.targets.extend_from_slice(b"\n    \n"),
            "snapshot" => b.snapshot.extend_from_slice(b"\n    \n"),
            _ => b
                .delegations
                .get_mut(role)
                .unwrap()
                .extend_from_slice(b"\n    \n"),
        }
        let err = match verify_cli(&b, &cli_pin_old(), &RoleVersions::new()) {
            Err(e) => e,
            Ok(repo) => repo.lookup(&tag("v1"), None).unwrap_err(),
        };
        assert_eq!(
            (err.reason_code(), err.detail().as_str()),
            ("HASH_MISMATCH", role)
        );
        assert!(err.to_string().contains("length"), "{err}");
    }
}

#[test]
fn flipped_delegation_bytes_name_the_delegation() {
    let base = cli_bytes("s2");
    let len = base.delegations["targets/alice"].len();
    for i in 0..len {
        let mut b = base.clone();
        b.delegations.get_mut("targets/alice").unwrap()[i] ^= 0x01;
        let repo = verify_cli(&b, &cli_pin_old(), &RoleVersions::new()).unwrap();
        let err = repo
            .lookup(&tag("both"), Some(&names(&["releases", "alice"])))
            .unwrap_err();
        assert_eq!(err.role(), Some("targets/alice"), "byte {i}: {err}");
        // releases is unaffected.
        repo.lookup(&tag("v1"), None).unwrap();
    }
}

#[test]
fn every_flipped_byte_of_the_cli_data_is_rejected() {
    let base = cli_bytes("s3");
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let len = match role {
            "root" => base.root.len(),
            "timestamp" => base.timestamp.len(),
            "snapshot" => base.snapshot.len(),
            _ => base.targets.len(),
        };
        for i in 0..len {
            let mut b = base.clone();
            let t = match role {
                "root" => &mut b.root,
                "timestamp" => &mut b.timestamp,
                "snapshot" => &mut b.snapshot,
                _ => &mut b.targets,
            };
            t[i] ^= 0x01;
            let err = verify_cli(&b, &cli_pin_new(), &RoleVersions::new())
                .err()
                .unwrap_or_else(|| panic!("{role} byte {i} accepted"));
            assert_eq!(err.role(), Some(role), "{role} byte {i}: {err}");
        }
    }
}

// ------------------------------------------------------------ root rotation

fn trusted(rel: &str) -> TrustedRoot {
    TrustedRoot::from_bytes(&read(rel)).unwrap()
}

fn rotate(
    trusted_root: &TrustedRoot,
    intermediates: &BTreeMap<u64, Vec<u8>>,
    pin: &portcullis_notary_tuf::PinnedKey,
) -> Result<portcullis_notary_tuf::VerifiedRepo, NotaryError> {
    verify_repository(
        CLI_GUN,
        pin,
        Some(trusted_root),
        intermediates,
        &cli_bytes("s3"),
        &RoleVersions::new(),
        cli_time(),
    )
}

#[test]
fn first_contact_after_rotation_needs_the_new_key() {
    let err = verify_cli(&cli_bytes("s3"), &cli_pin_old(), &RoleVersions::new()).unwrap_err();
    assert_eq!(err.reason_code(), "ROOT_KEY_MISMATCH");
    verify_cli(&cli_bytes("s3"), &cli_pin_new(), &RoleVersions::new()).unwrap();
}

#[test]
fn rotation_from_trusted_v1_through_v2_to_v3() {
    assert_eq!(peek_version(&cli_bytes("s3").root), Some(3));
    let t = trusted("notary-cli/s1/1.root.json");
    assert_eq!(t.version(), 1);
    let mut inter = BTreeMap::new();
    inter.insert(2, read("notary-cli/s3/2.root.json"));
    // The pinned key is not consulted when a trusted root is given (here it
    // is the old key, which v3 no longer lists).
    let repo = rotate(&t, &inter, &cli_pin_old()).unwrap();
    assert_eq!(repo.trusted_root().version(), 3);
    assert_eq!(
        repo.trusted_root().as_bytes(),
        cli_bytes("s3").root.as_slice()
    );
    repo.lookup(&tag("v1"), None).unwrap();
    // The stored root can be re-read and used as the next starting point.
    let again = TrustedRoot::from_bytes(repo.trusted_root().as_bytes()).unwrap();
    rotate(&again, &BTreeMap::new(), &cli_pin_new()).unwrap();
}

#[test]
fn rotation_from_trusted_v2_to_v3() {
    rotate(
        &trusted("notary-cli/s2/root.json"),
        &BTreeMap::new(),
        &cli_pin_old(),
    )
    .unwrap();
}

#[test]
fn rotation_forgets_timestamp_and_snapshot_versions_when_their_keys_change() {
    // v1 -> v2 rotated the snapshot key (server-managed snapshot).
    let mut inter = BTreeMap::new();
    inter.insert(2, read("notary-cli/s3/2.root.json"));
    let mut seen = RoleVersions::new();
    seen.set("snapshot", 1000);
    seen.set("timestamp", 1000);
    seen.set("targets", 4);
    let repo = verify_repository(
        CLI_GUN,
        &cli_pin_old(),
        Some(&trusted("notary-cli/s1/1.root.json")),
        &inter,
        &cli_bytes("s3"),
        &seen,
        cli_time(),
    )
    .unwrap();
    assert_eq!(repo.versions().get("snapshot"), Some(10));
    assert_eq!(repo.versions().get("timestamp"), Some(9));
    // v2 -> v3 rotated only the root key: the remembered versions still hold.
    let err = verify_repository(
        CLI_GUN,
        &cli_pin_old(),
        Some(&trusted("notary-cli/s2/root.json")),
        &BTreeMap::new(),
        &cli_bytes("s3"),
        &seen,
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TRUST_DATA_ROLLBACK", "timestamp")
    );
}

#[test]
fn rotation_needs_every_intermediate_root() {
    let err = rotate(
        &trusted("notary-cli/s1/1.root.json"),
        &BTreeMap::new(),
        &cli_pin_old(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TRUST_DATA_NOT_FOUND", "2.root")
    );
}

#[test]
fn a_tampered_intermediate_root_fails() {
    let mut two = read("notary-cli/s3/2.root.json");
    let n = two.len() - 20;
    two[n] ^= 0x01; // inside the signature
    let mut inter = BTreeMap::new();
    inter.insert(2, two);
    let err = rotate(
        &trusted("notary-cli/s1/1.root.json"),
        &inter,
        &cli_pin_old(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("SIGNATURE_INVALID", "root")
    );
}

#[test]
fn an_intermediate_with_the_wrong_version_fails() {
    let mut inter = BTreeMap::new();
    inter.insert(2, read("notary-cli/s3/1.root.json"));
    let err = rotate(
        &trusted("notary-cli/s1/1.root.json"),
        &inter,
        &cli_pin_old(),
    )
    .unwrap_err();
    assert_eq!(err.role(), Some("root"));
    assert!(err.to_string().contains("version"), "{err}");
}

/// A forged v3: the real v3 `signed`, but signed only by the new root key
/// (the attacker has the new key, not the old one). Also a v3 signed only by
/// the old key, without the new key's own signature.
#[test]
fn a_forged_rotation_step_fails() {
    let real: Value = serde_json::from_slice(&read("notary-cli/s3/3.root.json")).unwrap();
    let signed = &real["signed"];
    let new_id = signed["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let old_id = real["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_owned())
        .find(|id| *id != new_id)
        .unwrap();
    let only = |keep: &str| {
        let sigs: Vec<Value> = real["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["keyid"] == keep)
            .cloned()
            .collect();
        envelope(signed, sigs)
    };
    let bytes_with = |root: Vec<u8>| {
        let mut b = cli_bytes("s3");
        b.root = root;
        b
    };
    let t2 = trusted("notary-cli/s2/root.json");

    // Signed by the new key only: not signed by the trusted (old) root key.
    let forged = bytes_with(only(&new_id));
    let err = verify_repository(
        CLI_GUN,
        &cli_pin_new(),
        Some(&t2),
        &BTreeMap::new(),
        &forged,
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("SIGNATURE_INVALID", "root")
    );
    assert!(err.to_string().contains("previously trusted"), "{err}");

    // Signed by the old key only: v3 is not signed by its own root key.
    let forged = bytes_with(only(&old_id));
    let err = verify_repository(
        CLI_GUN,
        &cli_pin_new(),
        Some(&t2),
        &BTreeMap::new(),
        &forged,
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("SIGNATURE_INVALID", "root")
    );
    assert!(err.to_string().contains("its own"), "{err}");
}

/// Roots re-signed with the real (captured) old root key. Whoever holds the
/// trusted root key may rotate (TUF's model), but the chain must still be
/// complete and versioned, and the snapshot still pins the real root.
#[test]
fn forged_roots_signed_with_the_real_old_key() {
    let old_key = {
        let root: Value = serde_json::from_slice(&read("notary-cli/s2/root.json")).unwrap();
        let id = root["signed"]["roles"]["root"]["keyids"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let public = base64_decode(
            root["signed"]["keys"][&id]["keyval"]["public"]
                .as_str()
                .unwrap(),
        );
        let pem = String::from_utf8(read("notary-cli/keys/root-old.pk8.pem")).unwrap();
        let k = TestKey::from_pkcs8_pem(&pem, "ecdsa-x509", public);
        assert_eq!(k.id, id);
        k
    };
    let v2: Value = serde_json::from_slice(&read("notary-cli/s2/root.json")).unwrap();
    let mut signed = v2["signed"].clone();
    signed["version"] = 4.into();
    let v4 = sign_doc(&signed, &[&old_key]);
    let mut b = cli_bytes("s2");
    b.root = v4;
    let t2 = trusted("notary-cli/s2/root.json");
    // Version 4 from trusted v2 needs 3.root.json.
    let err = verify_repository(
        CLI_GUN,
        &cli_pin_old(),
        Some(&t2),
        &BTreeMap::new(),
        &b,
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("TRUST_DATA_NOT_FOUND", "3.root")
    );
    // Supplying the v2 file as "3.root.json" is caught by its version.
    let mut inter = BTreeMap::new();
    inter.insert(3, read("notary-cli/s2/root.json"));
    let err = verify_repository(
        CLI_GUN,
        &cli_pin_old(),
        Some(&t2),
        &inter,
        &b,
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(err.role(), Some("root"));
    // The snapshot still lists the real v2 root, so even a properly chained
    // forged root is caught by the snapshot's root hash.
    let mut signed3 = v2["signed"].clone();
    signed3["version"] = 3.into();
    inter.insert(3, sign_doc(&signed3, &[&old_key]));
    let err = verify_repository(
        CLI_GUN,
        &cli_pin_old(),
        Some(&t2),
        &inter,
        &b,
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "root")
    );
}

#[test]
fn a_served_root_older_than_the_trusted_one_is_a_rollback() {
    let err = verify_repository(
        CLI_GUN,
        &cli_pin_old(),
        Some(&trusted("notary-cli/s3/root.json")),
        &BTreeMap::new(),
        &cli_bytes("s2"),
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        NotaryError::TrustDataRollback {
            role: "root".into(),
            served: 2,
            seen: 3
        }
    );
}

#[test]
fn same_version_as_trusted_must_be_signed_by_it() {
    // Trusted v2 from the s2 capture, served v2 again: fine (the pin is not
    // consulted, so even the new key as pin does not matter).
    verify_repository(
        CLI_GUN,
        &cli_pin_new(),
        Some(&trusted("notary-cli/s2/root.json")),
        &BTreeMap::new(),
        &cli_bytes("s2"),
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap();
}

#[test]
fn same_version_as_trusted_signed_by_another_key_fails() {
    // An attacker's own v2: the real v2 content with the root key replaced,
    // self-signed. Same version as the trusted root, not signed by it.
    let v2: Value = serde_json::from_slice(&read("notary-cli/s2/root.json")).unwrap();
    let evil = TestKey::ecdsa();
    let mut signed = v2["signed"].clone();
    signed["keys"][&evil.id] = evil.json();
    signed["roles"]["root"]["keyids"] = serde_json::json!([evil.id]);
    let mut b = cli_bytes("s2");
    b.root = sign_doc(&signed, &[&evil]);
    let err = verify_repository(
        CLI_GUN,
        &evil.pin(),
        Some(&trusted("notary-cli/s2/root.json")),
        &BTreeMap::new(),
        &b,
        &RoleVersions::new(),
        cli_time(),
    )
    .unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("SIGNATURE_INVALID", "root")
    );
    // Without a trusted root, the evil root passes the pinned-key rule only
    // for a user who pinned the evil key, and even then the snapshot pins
    // the real root bytes.
    let err = verify_cli(&b, &evil.pin(), &RoleVersions::new()).unwrap_err();
    assert_eq!(
        (err.reason_code(), err.detail().as_str()),
        ("HASH_MISMATCH", "root")
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
