//! Serde types for Notary's TUF metadata (the `signed` part of each role).
//!
//! Unknown fields are ignored (they are still covered by the signature, which
//! is checked over the canonical form of the whole `signed` object). Numbers
//! that Go stores as `int` are `u64` here: negative values are malformed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// The outer envelope of every metadata file: `{"signed": .., "signatures": [..]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    /// The signed object, kept as a JSON value so that it can be
    /// re-canonicalised exactly as read.
    pub signed: serde_json::Value,
    /// The signatures over the canonical form of `signed`.
    pub signatures: Vec<Signature>,
}

/// One signature: `{"keyid","method","sig"}` with `sig` in base64.
#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    /// The TUF key id of the signing key.
    pub keyid: String,
    /// `ecdsa`, `rsapss`, `rsapkcs1v15`, `eddsa` (or `ed25519`).
    pub method: String,
    /// Standard base64 of the signature bytes.
    pub sig: String,
}

/// A public key object: `{"keytype", "keyval": {"public", "private"}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyJson {
    /// `ecdsa`, `ecdsa-x509`, `rsa`, `rsa-x509` or `ed25519`.
    pub keytype: String,
    /// The key value.
    pub keyval: KeyVal,
}

/// The `keyval` of a public key.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyVal {
    /// Standard base64 of the public key: DER SPKI (`ecdsa`, `rsa`), a PEM
    /// certificate (`*-x509`) or the raw 32 bytes (`ed25519`).
    pub public: String,
    /// Always `null` in published metadata.
    #[serde(default)]
    pub private: Option<serde_json::Value>,
}

/// The keys and threshold of a top-level role in root.json.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleKeys {
    /// The key ids allowed to sign for the role.
    pub keyids: Vec<String>,
    /// How many distinct keys must sign.
    pub threshold: u64,
}

/// `root.json`'s `signed`.
#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    /// Must be `Root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Expiry time.
    #[serde(deserialize_with = "de_time")]
    pub expires: DateTime<Utc>,
    /// Version (≥ 1).
    pub version: u64,
    /// All keys, by key id.
    pub keys: BTreeMap<String, KeyJson>,
    /// `root`, `targets`, `snapshot`, `timestamp`.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Whether versioned/hashed file names are used (informational).
    #[serde(default)]
    pub consistent_snapshot: Option<bool>,
}

/// The length, hashes and (optionally, TUF style) version of a file.
#[derive(Debug, Clone, Deserialize)]
pub struct FileMeta {
    /// Length of the served bytes (always present in Notary's metadata;
    /// optional in TUF's timestamp).
    #[serde(default)]
    pub length: Option<u64>,
    /// Hash algorithm → standard base64 of the digest (`sha256`, `sha512`).
    pub hashes: BTreeMap<String, String>,
    /// The file's version, when listed (Notary does not list it).
    #[serde(default)]
    pub version: Option<u64>,
}

/// `timestamp.json`'s and `snapshot.json`'s `signed`.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaList {
    /// `Timestamp` or `Snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Expiry time.
    #[serde(deserialize_with = "de_time")]
    pub expires: DateTime<Utc>,
    /// Version (≥ 1).
    pub version: u64,
    /// Role name → the file it vouches for.
    pub meta: BTreeMap<String, FileMeta>,
}

/// A delegated role declaration in `delegations.roles`.
#[derive(Debug, Clone, Deserialize)]
pub struct DelegatedRole {
    /// Full role name, `targets/<name>`.
    pub name: String,
    /// The key ids (in `delegations.keys`) allowed to sign for the role.
    pub keyids: Vec<String>,
    /// How many distinct keys must sign.
    pub threshold: u64,
    /// Target name prefixes the role may sign (`""` = all; absent or empty =
    /// none, as in Notary).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

/// `delegations` in a targets file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles, by key id.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyJson>,
    /// The delegated roles, in priority order.
    #[serde(default)]
    pub roles: Vec<DelegatedRole>,
}

/// `targets.json`'s (or a delegated role's) `signed`.
#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    /// Must be `Targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Expiry time.
    #[serde(deserialize_with = "de_time")]
    pub expires: DateTime<Utc>,
    /// Version (≥ 1).
    pub version: u64,
    /// Target name (the tag) → its length and hashes.
    #[serde(default)]
    pub targets: BTreeMap<String, FileMeta>,
    /// Delegated roles, if any.
    #[serde(default)]
    pub delegations: Option<Delegations>,
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("bad expires {s:?}: {e}")))
}
