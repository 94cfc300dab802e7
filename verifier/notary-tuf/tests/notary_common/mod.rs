//! Shared helpers: test data loading and a small signer for hand-made
//! metadata (keys generated with aws-lc-rs, or the real notary CLI keys
//! captured in testdata/notary-cli/keys).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use portcullis_notary_tuf::canonical::{canonicalize, key_id};
use portcullis_notary_tuf::{
    NotaryError, PinnedKey, RoleBytes, RoleVersions, TargetQuery, VerifiedRepo,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

/// Test data lives in the workspace's `tests/data/`: the Docker Hub capture
/// in `notaryv1/sample-image`, the notary CLI captures in `notary-tuf/`.
pub fn testdata(rel: &str) -> PathBuf {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    match rel.strip_prefix("dockerhub-sample-image") {
        Some(rest) => data.join(format!("notaryv1/sample-image{rest}")),
        None => data.join("notary-tuf").join(rel),
    }
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(testdata(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn read_opt(rel: &str) -> Option<Vec<u8>> {
    std::fs::read(testdata(rel)).ok()
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

// ---------------------------------------------------------------- Docker Hub

pub const HUB_GUN: &str = "docker.io/phbelitz/sample-image";
pub const HUB_PIN: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtR5kwrDK22SyCu7WMF8tCjVgeORA
S2PWacRcBN/VQdVK4PVk1w4pMWlz9AHQthDGl+W2k3elHkPbR+gNkK2PCA==
-----END PUBLIC KEY-----";
pub const HUB_SIGN: &str =
    "sha256:a154797b8300165956ee1f16d98f3a1426301c1168f0462c73ce9bc03361cabf";
pub const HUB_V1: &str = "sha256:799c0fa8aa4c9fbff5a99aef1b4b5c3abb9c2f34134345005982fad3489893c7";

pub fn hub_time() -> DateTime<Utc> {
    at("2019-10-01T00:00:00Z")
}

pub fn hub_bytes() -> RoleBytes {
    RoleBytes {
        root: read("dockerhub-sample-image/root.json"),
        timestamp: read("dockerhub-sample-image/timestamp.json"),
        snapshot: read("dockerhub-sample-image/snapshot.json"),
        targets: read("dockerhub-sample-image/targets.json"),
        delegations: BTreeMap::new(),
    }
}

pub fn hub_pin() -> PinnedKey {
    PinnedKey::from_pem(HUB_PIN).unwrap()
}

pub fn verify_hub(bytes: &RoleBytes, now: DateTime<Utc>) -> Result<VerifiedRepo, NotaryError> {
    portcullis_notary_tuf::verify_repository(
        HUB_GUN,
        &hub_pin(),
        None,
        &BTreeMap::new(),
        bytes,
        &RoleVersions::new(),
        now,
    )
}

// ---------------------------------------------------------- notary CLI data

pub const CLI_GUN: &str = "registry.test/portcullis/app";

pub fn cli_time() -> DateTime<Utc> {
    at("2026-11-24T18:00:00Z")
}

pub fn cli_capture() -> Value {
    serde_json::from_slice(&read("notary-cli/capture.json")).unwrap()
}

/// The pinned key for root versions 1 and 2 (before the root rotation).
pub fn cli_pin_old() -> PinnedKey {
    PinnedKey::from_pem(cli_capture()["root_key_spki_pem_v1_v2"].as_str().unwrap()).unwrap()
}

/// The pinned key for root version 3 (after the rotation).
pub fn cli_pin_new() -> PinnedKey {
    PinnedKey::from_pem(cli_capture()["root_key_spki_pem_v3"].as_str().unwrap()).unwrap()
}

/// The digest signed for a tag in the capture, by the given role.
pub fn cli_digest(tag: &str, role: &str) -> String {
    let cap = cli_capture();
    cap["tags"][tag]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["roles"].as_array().unwrap().iter().any(|r| r == role))
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// All files of one captured state (`s1`, `s2`, `s3`).
pub fn cli_bytes(state: &str) -> RoleBytes {
    let mut delegations = BTreeMap::new();
    for d in ["releases", "alice"] {
        if let Some(b) = read_opt(&format!("notary-cli/{state}/targets/{d}.json")) {
            delegations.insert(format!("targets/{d}"), b);
        }
    }
    RoleBytes {
        root: read(&format!("notary-cli/{state}/root.json")),
        timestamp: read(&format!("notary-cli/{state}/timestamp.json")),
        snapshot: read(&format!("notary-cli/{state}/snapshot.json")),
        targets: read(&format!("notary-cli/{state}/targets.json")),
        delegations,
    }
}

pub fn verify_cli(
    bytes: &RoleBytes,
    pin: &PinnedKey,
    seen: &RoleVersions,
) -> Result<VerifiedRepo, NotaryError> {
    portcullis_notary_tuf::verify_repository(
        CLI_GUN,
        pin,
        None,
        &BTreeMap::new(),
        bytes,
        seen,
        cli_time(),
    )
}

pub fn tag(t: &str) -> TargetQuery {
    TargetQuery::tag(t)
}

pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------- signing keys

pub enum Priv {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

/// A signing key with its TUF key object.
pub struct TestKey {
    pub keytype: String,
    pub public: Vec<u8>,
    pub id: String,
    pub spki_der: Vec<u8>,
    pub private: Priv,
    /// Method written into signatures.
    pub method: String,
}

impl TestKey {
    fn new(
        keytype: &str,
        public: Vec<u8>,
        spki_der: Vec<u8>,
        private: Priv,
        method: &str,
    ) -> TestKey {
        TestKey {
            keytype: keytype.to_owned(),
            id: key_id(keytype, &public).unwrap(),
            public,
            spki_der,
            private,
            method: method.to_owned(),
        }
    }

    pub fn ecdsa() -> TestKey {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        TestKey::new("ecdsa", spki.clone(), spki, Priv::Ecdsa(pair), "ecdsa")
    }

    pub fn ed25519() -> TestKey {
        let pair = Ed25519KeyPair::generate().unwrap();
        let raw = pair.public_key().as_ref().to_vec();
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        TestKey::new("ed25519", raw, spki, Priv::Ed25519(pair), "eddsa")
    }

    pub fn rsa() -> TestKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        TestKey::new("rsa", spki.clone(), spki, Priv::Rsa(pair), "rsapss")
    }

    /// A real notary CLI key (PKCS#8 PEM) published as `keytype` with the
    /// given `public` bytes (e.g. the certificate PEM for `ecdsa-x509`).
    pub fn from_pkcs8_pem(pem: &str, keytype: &str, public: Vec<u8>) -> TestKey {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        TestKey::new(keytype, public, spki, Priv::Ecdsa(pair), "ecdsa")
    }

    pub fn json(&self) -> Value {
        json!({"keytype": self.keytype, "keyval": {"private": null, "public": STANDARD.encode(&self.public)}})
    }

    pub fn spki_pem(&self) -> String {
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&self.spki_der)
        )
    }

    pub fn pin(&self) -> PinnedKey {
        PinnedKey::from_pem(&self.spki_pem()).unwrap()
    }

    pub fn sign_raw(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.private {
            Priv::Ecdsa(p) => p.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Priv::Ed25519(p) => p.sign(msg).as_ref().to_vec(),
            Priv::Rsa(p) => {
                let mut sig = vec![0u8; p.public_modulus_len()];
                p.sign(&signature::RSA_PSS_SHA256, &rng, msg, &mut sig)
                    .unwrap();
                sig
            }
        }
    }

    pub fn signature(&self, msg: &[u8]) -> Value {
        json!({"keyid": self.id, "method": self.method, "sig": STANDARD.encode(self.sign_raw(msg))})
    }
}

/// Serialise `{"signed": signed, "signatures": [...]}` signed by `keys`.
pub fn sign_doc(signed: &Value, keys: &[&TestKey]) -> Vec<u8> {
    let msg = canonicalize(signed).unwrap();
    let sigs: Vec<Value> = keys.iter().map(|k| k.signature(&msg)).collect();
    envelope(signed, sigs)
}

pub fn envelope(signed: &Value, sigs: Vec<Value>) -> Vec<u8> {
    let msg = canonicalize(signed).unwrap();
    let mut out = b"{\"signed\":".to_vec();
    out.extend_from_slice(&msg);
    out.extend_from_slice(b",\"signatures\":");
    out.extend_from_slice(serde_json::to_string(&sigs).unwrap().as_bytes());
    out.push(b'}');
    out
}

pub fn file_meta(bytes: &[u8]) -> Value {
    json!({
        "hashes": {
            "sha256": STANDARD.encode(Sha256::digest(bytes)),
            "sha512": STANDARD.encode(Sha512::digest(bytes)),
        },
        "length": bytes.len(),
    })
}

pub fn target(digest_hex: &str, length: u64) -> Value {
    json!({"hashes": {"sha256": STANDARD.encode(hex::decode(digest_hex).unwrap())}, "length": length})
}

pub fn digest_of(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub const FAR: &str = "2030-01-01T00:00:00Z";
pub const NOW: &str = "2026-11-24T18:00:00Z";
pub const PAST: &str = "2026-11-24T17:59:59Z";

/// A hook that edits a signed value before it is signed.
pub type Edit = Box<dyn Fn(&mut Value)>;

/// A hand-made repository with generated keys; fields can be changed before
/// [`Repo::build`] signs everything.
pub struct Repo {
    pub root_keys: Vec<TestKey>,
    pub root_threshold: u64,
    pub root_signers: Vec<usize>,
    pub timestamp: TestKey,
    pub snapshot: TestKey,
    pub targets_keys: Vec<TestKey>,
    pub targets_threshold: u64,
    pub targets_signers: Vec<usize>,
    pub root_version: u64,
    pub expires: BTreeMap<&'static str, String>,
    pub targets: Value,
    /// Delegations of the top-level targets role: `{keys, roles}`.
    pub delegations: Option<Value>,
    /// Delegated role files: name → (signed targets value, signing keys).
    pub delegated: Vec<(String, Value, Vec<usize>)>,
    /// Keys used by delegated roles, indexed by the signer lists above.
    pub delegation_keys: Vec<TestKey>,
    /// Hook to edit the snapshot's signed value before signing.
    pub edit_snapshot: Option<Edit>,
    /// Hook to edit the timestamp's signed value before signing.
    pub edit_timestamp: Option<Edit>,
    /// Hook to edit the root's signed value before signing.
    pub edit_root: Option<Edit>,
}

impl Default for Repo {
    fn default() -> Self {
        Repo {
            root_keys: vec![TestKey::ecdsa()],
            root_threshold: 1,
            root_signers: vec![0],
            timestamp: TestKey::ecdsa(),
            snapshot: TestKey::ecdsa(),
            targets_keys: vec![TestKey::ecdsa()],
            targets_threshold: 1,
            targets_signers: vec![0],
            root_version: 1,
            expires: BTreeMap::new(),
            targets: json!({"v1": target(&digest_of("v1"), 10)}),
            delegations: None,
            delegated: Vec::new(),
            delegation_keys: Vec::new(),
            edit_snapshot: None,
            edit_timestamp: None,
            edit_root: None,
        }
    }
}

impl Repo {
    pub fn exp(&self, role: &str) -> String {
        self.expires
            .get(role)
            .cloned()
            .unwrap_or_else(|| FAR.to_owned())
    }

    pub fn root_signed(&self) -> Value {
        let mut keys = serde_json::Map::new();
        for k in self
            .root_keys
            .iter()
            .chain([&self.timestamp, &self.snapshot])
            .chain(&self.targets_keys)
        {
            keys.insert(k.id.clone(), k.json());
        }
        let ids = |ks: &[&TestKey]| ks.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
        let mut v = json!({
            "_type": "Root",
            "consistent_snapshot": false,
            "expires": self.exp("root"),
            "keys": keys,
            "roles": {
                "root": {"keyids": ids(&self.root_keys.iter().collect::<Vec<_>>()), "threshold": self.root_threshold},
                "snapshot": {"keyids": [self.snapshot.id], "threshold": 1},
                "targets": {"keyids": ids(&self.targets_keys.iter().collect::<Vec<_>>()), "threshold": self.targets_threshold},
                "timestamp": {"keyids": [self.timestamp.id], "threshold": 1},
            },
            "version": self.root_version,
        });
        if let Some(edit) = &self.edit_root {
            edit(&mut v);
        }
        v
    }

    pub fn build(&self) -> RoleBytes {
        let root_signed = self.root_signed();
        let root_signers: Vec<&TestKey> = self
            .root_signers
            .iter()
            .map(|i| &self.root_keys[*i])
            .collect();
        let root = sign_doc(&root_signed, &root_signers);

        let mut targets_signed = json!({
            "_type": "Targets",
            "expires": self.exp("targets"),
            "targets": self.targets,
            "version": 1,
        });
        if let Some(d) = &self.delegations {
            targets_signed["delegations"] = d.clone();
        }
        let tsigners: Vec<&TestKey> = self
            .targets_signers
            .iter()
            .map(|i| &self.targets_keys[*i])
            .collect();
        let targets = sign_doc(&targets_signed, &tsigners);

        let mut delegations = BTreeMap::new();
        let mut meta = serde_json::Map::new();
        meta.insert("root".into(), file_meta(&root));
        meta.insert("targets".into(), file_meta(&targets));
        for (name, signed, signers) in &self.delegated {
            let ks: Vec<&TestKey> = signers.iter().map(|i| &self.delegation_keys[*i]).collect();
            let b = sign_doc(signed, &ks);
            meta.insert(name.clone(), file_meta(&b));
            delegations.insert(name.clone(), b);
        }
        let mut snap_signed = json!({"_type": "Snapshot", "expires": self.exp("snapshot"), "meta": meta, "version": 1});
        if let Some(edit) = &self.edit_snapshot {
            edit(&mut snap_signed);
        }
        let snapshot = sign_doc(&snap_signed, &[&self.snapshot]);
        let mut ts_signed = json!({
            "_type": "Timestamp",
            "expires": self.exp("timestamp"),
            "meta": {"snapshot": file_meta(&snapshot)},
            "version": 1,
        });
        if let Some(edit) = &self.edit_timestamp {
            edit(&mut ts_signed);
        }
        let timestamp = sign_doc(&ts_signed, &[&self.timestamp]);
        RoleBytes {
            root,
            timestamp,
            snapshot,
            targets,
            delegations,
        }
    }

    pub fn verify(&self, bytes: &RoleBytes) -> Result<VerifiedRepo, NotaryError> {
        self.verify_gun("example.com/hand/made", bytes)
    }

    pub fn verify_gun(&self, gun: &str, bytes: &RoleBytes) -> Result<VerifiedRepo, NotaryError> {
        portcullis_notary_tuf::verify_repository(
            gun,
            &self.root_keys[0].pin(),
            None,
            &BTreeMap::new(),
            bytes,
            &RoleVersions::new(),
            at(NOW),
        )
    }
}

/// A delegated role declaration for `delegations.roles`.
pub fn role_decl(name: &str, keys: &[&TestKey], threshold: u64, paths: &[&str]) -> Value {
    json!({
        "name": name,
        "keyids": keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        "threshold": threshold,
        "paths": paths,
    })
}

pub fn keys_obj(keys: &[&TestKey]) -> Value {
    let mut m = serde_json::Map::new();
    for k in keys {
        m.insert(k.id.clone(), k.json());
    }
    Value::Object(m)
}

pub fn delegated_targets(targets: Value, delegations: Option<Value>) -> Value {
    let mut v = json!({"_type": "Targets", "expires": FAR, "targets": targets, "version": 1});
    if let Some(d) = delegations {
        v["delegations"] = d;
    }
    v
}
