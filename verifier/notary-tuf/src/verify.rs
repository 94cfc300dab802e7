//! The verification chain: root (pinned key or rotation from a trusted
//! root), timestamp, snapshot, targets, delegations; then target lookup.
//!
//! See the crate documentation for the order of checks and the decisions
//! taken where Notary, TUF and Docker differ.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256, Sha512};

use super::canonical::canonicalize;
use super::error::NotaryError;
use super::keys::{PinnedKey, TufKey};
use super::model::{Delegations, Envelope, FileMeta, KeyJson, MetaList, RoleKeys, Root, Targets};

/// The four top-level roles, as named in `root.json`.
const TOP_ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// The Docker convention's release delegation.
const RELEASES: &str = "targets/releases";

/// The raw bytes of one repository's trust data, exactly as served by
/// `/v2/<gun>/_trust/tuf/<role>.json`.
///
/// Empty bytes mean "not available" (the caller got a 404) and give
/// [`NotaryError::TrustDataNotFound`] when the role is needed. Callers should
/// cap what they download (Notary caps timestamp.json at 100 KiB and other
/// files at 10 MiB); verification work is linear in the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleBytes {
    /// `root.json` (the newest root).
    pub root: Vec<u8>,
    /// `timestamp.json`.
    pub timestamp: Vec<u8>,
    /// `snapshot.json`.
    pub snapshot: Vec<u8>,
    /// `targets.json`.
    pub targets: Vec<u8>,
    /// Delegated roles by name (`targets/releases`, or short: `releases`) →
    /// bytes of `targets/releases.json`. Only the roles a lookup needs have
    /// to be present; see [`declared_delegations`].
    pub delegations: BTreeMap<String, Vec<u8>>,
}

/// The newest version seen so far of each role (`root`, `timestamp`,
/// `snapshot`, `targets`, `targets/releases`, ...), for rollback protection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleVersions(BTreeMap<String, u64>);

impl RoleVersions {
    /// No versions seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The version seen for `role`, if any.
    pub fn get(&self, role: &str) -> Option<u64> {
        self.0.get(role).copied()
    }

    /// Record `version` for `role` (replacing what was there).
    pub fn set(&mut self, role: &str, version: u64) {
        self.0.insert(role.to_owned(), version);
    }

    /// Forget `role`.
    pub fn remove(&mut self, role: &str) {
        self.0.remove(role);
    }

    /// All roles and versions, sorted by role name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

impl FromIterator<(String, u64)> for RoleVersions {
    fn from_iter<I: IntoIterator<Item = (String, u64)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A root that was verified earlier (by [`verify_repository`]) and is
/// trusted as the starting point of root rotation.
///
/// It is stored as the raw root.json bytes ([`TrustedRoot::as_bytes`]) and
/// re-read with [`TrustedRoot::from_bytes`], which does **not** re-verify
/// it: the store must be integrity-protected and keyed by GUN *and* pinned
/// key ([`PinnedKey::fingerprint`]), so that changing the pin discards it.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    raw: Vec<u8>,
    root: Root,
    ring: KeyRing,
}

impl TrustedRoot {
    /// Re-read a root previously returned by [`VerifiedRepo::trusted_root`].
    /// Only its structure is checked.
    pub fn from_bytes(bytes: &[u8]) -> Result<TrustedRoot, NotaryError> {
        let (doc, ring) = parse_root("root", bytes)?;
        Ok(TrustedRoot {
            raw: bytes.to_vec(),
            root: doc.signed,
            ring,
        })
    }

    /// The root's version.
    pub fn version(&self) -> u64 {
        self.root.version
    }

    /// The root's expiry.
    pub fn expires(&self) -> DateTime<Utc> {
        self.root.expires
    }

    /// The raw root.json bytes, for storing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }
}

/// What to look up in the signed targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetQuery {
    /// The tag (target name), if the reference has one.
    pub tag: Option<String>,
    /// The raw SHA-256 manifest digest, if the reference has one.
    pub digest: Option<[u8; 32]>,
}

impl TargetQuery {
    /// Look up a tag.
    pub fn tag(tag: impl Into<String>) -> Self {
        Self {
            tag: Some(tag.into()),
            digest: None,
        }
    }

    /// Look up a digest (`sha256:<64 hex>`); `None` if it is not one.
    pub fn digest(digest: &str) -> Option<Self> {
        Some(Self {
            tag: None,
            digest: Some(parse_digest(digest)?),
        })
    }

    /// Look up a tag and require its signed digest to equal `digest`
    /// (`sha256:<64 hex>`); `None` if the digest is not one.
    pub fn tag_and_digest(tag: impl Into<String>, digest: &str) -> Option<Self> {
        Some(Self {
            tag: Some(tag.into()),
            digest: Some(parse_digest(digest)?),
        })
    }
}

/// Parse `sha256:<64 lowercase or uppercase hex>` into the raw digest.
pub fn parse_digest(digest: &str) -> Option<[u8; 32]> {
    let hex_part = digest.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// The result of a successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTarget {
    /// The target name (tag). For a digest-only lookup, the first name (in
    /// byte order) that the first consulted role signs with that digest.
    pub name: String,
    /// `sha256:<hex>` of the signed manifest.
    pub digest: String,
    /// The signed manifest length, when listed.
    pub length: Option<u64>,
    /// The roles that sign it (`targets`, `targets/releases`, ...), in the
    /// order consulted.
    pub roles: Vec<String>,
}

/// The state of one delegated role after [`verify_repository`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegationStatus {
    /// Its metadata was supplied and verified.
    Verified,
    /// Its metadata was supplied and failed; a lookup that needs it returns
    /// this error.
    Failed(NotaryError),
    /// The snapshot lists it but no bytes were supplied; a lookup that needs
    /// it returns [`NotaryError::TrustDataNotFound`].
    NotFetched,
    /// Declared but never published (not in the snapshot, no bytes): it
    /// signs nothing.
    Unpublished,
}

/// A verified targets role (top-level or delegated).
#[derive(Debug, Clone)]
struct TargetsRole {
    name: String,
    targets: BTreeMap<String, FileMeta>,
    /// Effective path prefixes (restricted by every ancestor).
    paths: Vec<String>,
    /// Names of the roles it delegates to directly.
    children: Vec<String>,
}

#[derive(Debug, Clone)]
enum DelegationState {
    Verified(TargetsRole),
    Failed(NotaryError),
    NotFetched,
    Unpublished,
}

/// A repository whose trust data verified: root, timestamp, snapshot and
/// targets; each supplied delegation individually.
#[derive(Debug, Clone)]
pub struct VerifiedRepo {
    trusted_root: TrustedRoot,
    versions: RoleVersions,
    expires: BTreeMap<String, DateTime<Utc>>,
    top: TargetsRole,
    delegations: BTreeMap<String, DelegationState>,
    declared: Vec<String>,
}

impl VerifiedRepo {
    /// The verified root: store it (with [`TrustedRoot::as_bytes`]) as the
    /// next call's `trusted_root`.
    pub fn trusted_root(&self) -> &TrustedRoot {
        &self.trusted_root
    }

    /// The versions to remember for rollback protection: the served version
    /// of every role verified now, the caller's previous value for the others
    /// (minus timestamp/snapshot when a root rotation changed their keys, as
    /// TUF 5.3.11 requires). Store these as the next call's `seen_versions`.
    pub fn versions(&self) -> &RoleVersions {
        &self.versions
    }

    /// Every delegated role declared by a verified targets role, parents
    /// before children, in declaration order.
    pub fn declared_delegations(&self) -> &[String] {
        &self.declared
    }

    /// The state of a declared delegation (full name, `targets/releases`).
    pub fn delegation_status(&self, name: &str) -> Option<DelegationStatus> {
        self.delegations.get(name).map(|s| match s {
            DelegationState::Verified(_) => DelegationStatus::Verified,
            DelegationState::Failed(e) => DelegationStatus::Failed(e.clone()),
            DelegationState::NotFetched => DelegationStatus::NotFetched,
            DelegationState::Unpublished => DelegationStatus::Unpublished,
        })
    }

    /// Expiry of every verified role, by role name.
    pub fn expires(&self) -> &BTreeMap<String, DateTime<Utc>> {
        &self.expires
    }

    /// The earliest expiry among the verified roles: the verdict must not be
    /// cached beyond it.
    pub fn earliest_expiry(&self) -> DateTime<Utc> {
        self.expires
            .values()
            .min()
            .copied()
            .unwrap_or(self.trusted_root.root.expires)
    }

    /// Look a target up.
    ///
    /// `delegations` is the policy:
    /// * `None` (or an empty list): Docker's convention. If the top-level
    ///   targets declare `targets/releases`, only that role counts; otherwise
    ///   only the top-level `targets` role.
    /// * `Some(names)`: **every** listed role must sign the target. Names are
    ///   given short (`releases` = `targets/releases`) or in full; `targets`
    ///   means the top-level role. A listed role that is not declared, or
    ///   does not sign the target, gives [`NotaryError::DelegationMissing`];
    ///   listed roles that sign different digests give
    ///   [`NotaryError::AmbiguousDigest`].
    ///
    /// A target counts for a delegated role only if the role's effective
    /// `paths` (each a prefix of the target name, `""` = any; restricted by
    /// every ancestor, as in Notary) allow its name. A tag found nowhere gives
    /// [`NotaryError::TagNotSigned`]; a tag whose signed digest differs from
    /// the queried digest gives [`NotaryError::DigestMismatch`].
    pub fn lookup(
        &self,
        query: &TargetQuery,
        delegations: Option<&[String]>,
    ) -> Result<SignedTarget, NotaryError> {
        let what = match (&query.tag, &query.digest) {
            (Some(tag), _) => tag.clone(),
            (None, Some(d)) => format!("sha256:{}", hex::encode(d)),
            (None, None) => {
                return Err(NotaryError::TagNotSigned {
                    tag: String::new(),
                    roles: "(empty query)".to_owned(),
                });
            }
        };
        let explicit = delegations.filter(|l| !l.is_empty());
        let roles: Vec<(String, String)> = match explicit {
            None => {
                if self.top.children.iter().any(|c| c == RELEASES) {
                    vec![("releases".to_owned(), RELEASES.to_owned())]
                } else {
                    vec![("targets".to_owned(), "targets".to_owned())]
                }
            }
            Some(list) => {
                let mut seen = BTreeSet::new();
                list.iter()
                    .map(|n| (n.clone(), full_role_name(n)))
                    .filter(|(_, full)| seen.insert(full.clone()))
                    .collect()
            }
        };

        // (role, name, digest, length)
        let mut found: Vec<(String, String, [u8; 32], Option<u64>)> = Vec::new();
        for (given, full) in &roles {
            let role: Option<&TargetsRole> = if full == "targets" {
                Some(&self.top)
            } else {
                match self.delegations.get(full) {
                    None => {
                        // A role under a delegation that failed (or was not
                        // fetched) cannot be known: report the ancestor.
                        if let Some(e) = self.ancestor_error(full) {
                            return Err(e);
                        }
                        if explicit.is_some() {
                            return Err(NotaryError::DelegationMissing {
                                name: given.clone(),
                                reason: "is not declared in the targets metadata".to_owned(),
                            });
                        }
                        None
                    }
                    Some(DelegationState::Failed(e)) => return Err(e.clone()),
                    Some(DelegationState::NotFetched) => {
                        return Err(NotaryError::TrustDataNotFound { role: full.clone() });
                    }
                    Some(DelegationState::Unpublished) => None,
                    Some(DelegationState::Verified(r)) => Some(r),
                }
            };
            let hit = match role {
                Some(r) => r.find(query)?,
                None => None,
            };
            match hit {
                Some((name, digest, length)) => found.push((full.clone(), name, digest, length)),
                None if explicit.is_some() => {
                    return Err(NotaryError::DelegationMissing {
                        name: given.clone(),
                        reason: format!("does not sign {what}"),
                    });
                }
                None => {
                    return Err(NotaryError::TagNotSigned {
                        tag: what,
                        roles: full.clone(),
                    });
                }
            }
        }

        let Some((_, name, digest, length)) = found.first().cloned() else {
            return Err(NotaryError::TagNotSigned {
                tag: what,
                roles: String::new(),
            });
        };
        if found.iter().any(|(_, _, d, _)| *d != digest) {
            let signed = found
                .iter()
                .map(|(r, _, d, _)| format!("{r}=sha256:{}", hex::encode(d)))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(NotaryError::AmbiguousDigest { tag: what, signed });
        }
        if let (Some(_), Some(expected)) = (&query.tag, &query.digest)
            && *expected != digest
        {
            return Err(NotaryError::DigestMismatch {
                expected: format!("sha256:{}", hex::encode(expected)),
                signed: format!("sha256:{}", hex::encode(digest)),
            });
        }
        Ok(SignedTarget {
            name,
            digest: format!("sha256:{}", hex::encode(digest)),
            length,
            roles: found.into_iter().map(|(r, ..)| r).collect(),
        })
    }
}

impl VerifiedRepo {
    /// The error of the nearest declared ancestor of `full` that could not
    /// be verified, if any.
    fn ancestor_error(&self, full: &str) -> Option<NotaryError> {
        let mut name = parent_of(full);
        while name.starts_with("targets/") {
            match self.delegations.get(name) {
                Some(DelegationState::Failed(e)) => return Some(e.clone()),
                Some(DelegationState::NotFetched) => {
                    return Some(NotaryError::TrustDataNotFound {
                        role: name.to_owned(),
                    });
                }
                Some(_) => return None,
                None => name = parent_of(name),
            }
        }
        None
    }
}

impl TargetsRole {
    fn path_allowed(&self, name: &str) -> bool {
        self.paths.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// Find the query in this role: `(name, digest, length)`.
    #[allow(clippy::type_complexity)]
    fn find(
        &self,
        query: &TargetQuery,
    ) -> Result<Option<(String, [u8; 32], Option<u64>)>, NotaryError> {
        if let Some(tag) = &query.tag {
            if !self.path_allowed(tag) {
                return Ok(None);
            }
            let Some(meta) = self.targets.get(tag) else {
                return Ok(None);
            };
            let digest = target_sha256(meta).ok_or_else(|| {
                NotaryError::malformed(
                    &self.name,
                    format!("target {tag:?} has no valid sha256 hash"),
                )
            })?;
            return Ok(Some((tag.clone(), digest, meta.length)));
        }
        if let Some(want) = &query.digest {
            for (name, meta) in &self.targets {
                if self.path_allowed(name) && target_sha256(meta).as_ref() == Some(want) {
                    return Ok(Some((name.clone(), *want, meta.length)));
                }
            }
        }
        Ok(None)
    }
}

fn target_sha256(meta: &FileMeta) -> Option<[u8; 32]> {
    let raw = STANDARD
        .decode(meta.hashes.get("sha256")?.as_bytes())
        .ok()?;
    raw.try_into().ok()
}

/// `releases` → `targets/releases`; `targets` and full names unchanged.
fn full_role_name(name: &str) -> String {
    if name == "targets" || name.starts_with("targets/") {
        name.to_owned()
    } else {
        format!("targets/{name}")
    }
}

/// The `signed.version` of a metadata file, without verifying anything: the
/// caller uses it on root.json to know which `N.root.json` to fetch for a
/// rotation (N = trusted version + 1 ..= this version − 1).
pub fn peek_version(bytes: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("signed")?.get("version")?.as_u64()
}

/// The delegated role names declared in a targets (or delegated targets)
/// file, **unverified**: a prefetch hint only. Use it on targets.json to
/// know which `targets/<name>.json` files to fetch before calling
/// [`verify_repository`] (and on those files for nested delegations).
/// Verification itself only trusts the declarations in verified metadata.
pub fn declared_delegations(targets_bytes: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(targets_bytes) else {
        return Vec::new();
    };
    v.get("signed")
        .and_then(|s| s.get("delegations"))
        .and_then(|d| d.get("roles"))
        .and_then(|r| r.as_array())
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.get("name")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Verify one repository's trust data, in TUF order: root, timestamp,
/// snapshot, targets, delegations.
///
/// * `gun`: the Notary GUN (`docker.io/library/alpine`); root certificates
///   must be issued for it (CN = GUN, or a `prefix*` wildcard, as Notary
///   checks).
/// * `pinned`: the trusted root key. Without `trusted_root` it must be one
///   of the served root's root-role keys and must have signed it.
/// * `trusted_root`: a root verified earlier, if any. Then the served root
///   must be reached from it by rotation: for a served version V above the
///   trusted version T, `intermediate_roots` must hold the bytes of
///   `N.root.json` for T < N < V (an entry for V is ignored: the served
///   root.json is used); each step must be signed by a threshold of the
///   previous root's root keys and of its own, with version exactly the
///   previous one plus one. V < T is a rollback. The pinned key is not
///   consulted (it may have been rotated away).
/// * `seen_versions`: newest versions seen before; older served versions are
///   rollbacks.
/// * `now`: the evaluation time for every expiry check.
///
/// Delegations are verified individually: one that fails does not fail the
/// call, but any lookup that needs it returns its error (see
/// [`VerifiedRepo::delegation_status`]). Supplied delegation bytes that no
/// verified role declares are ignored.
pub fn verify_repository(
    gun: &str,
    pinned: &PinnedKey,
    trusted_root: Option<&TrustedRoot>,
    intermediate_roots: &BTreeMap<u64, Vec<u8>>,
    bytes: &RoleBytes,
    seen_versions: &RoleVersions,
    now: DateTime<Utc>,
) -> Result<VerifiedRepo, NotaryError> {
    let mut seen = seen_versions.clone();

    // ---- root ----
    let (root_doc, ring) = verify_root(
        gun,
        pinned,
        trusted_root,
        intermediate_roots,
        &bytes.root,
        now,
    )?;
    let root = &root_doc.signed;
    check_version_not_older("root", root.version, seen.get("root"))?;
    if let Some(t) = trusted_root {
        // TUF 5.3.11: forget timestamp/snapshot versions when their keys rotated.
        let rotated = ["timestamp", "snapshot"].iter().any(|role| {
            role_key_material(&t.root, &t.ring, role) != role_key_material(root, &ring, role)
        });
        if rotated {
            seen.remove("timestamp");
            seen.remove("snapshot");
        }
    }
    check_not_expired("root", root.expires, now)?;
    let mut expires = BTreeMap::new();
    expires.insert("root".to_owned(), root.expires);
    let mut versions = seen.clone();
    versions.set("root", root.version);

    // ---- timestamp ----
    let ts = parse_doc::<MetaList>("timestamp", &bytes.timestamp)?;
    check_meta_list("timestamp", "Timestamp", &ts.signed)?;
    check_signatures(
        "timestamp",
        &ts,
        &top_role_keys(root, &ring, "timestamp"),
        top_threshold(root, "timestamp"),
    )?;
    check_version_not_older("timestamp", ts.signed.version, seen.get("timestamp"))?;
    check_not_expired("timestamp", ts.signed.expires, now)?;
    let snap_meta = ts
        .signed
        .meta
        .get("snapshot")
        .ok_or_else(|| NotaryError::malformed("timestamp", "no meta for snapshot"))?;
    expires.insert("timestamp".to_owned(), ts.signed.expires);
    versions.set("timestamp", ts.signed.version);

    // ---- snapshot ----
    require_bytes("snapshot", &bytes.snapshot)?;
    check_file("snapshot", "timestamp", &bytes.snapshot, snap_meta)?;
    let snap = parse_doc::<MetaList>("snapshot", &bytes.snapshot)?;
    check_meta_list("snapshot", "Snapshot", &snap.signed)?;
    check_signatures(
        "snapshot",
        &snap,
        &top_role_keys(root, &ring, "snapshot"),
        top_threshold(root, "snapshot"),
    )?;
    check_listed_version("snapshot", "timestamp", snap.signed.version, snap_meta)?;
    check_version_not_older("snapshot", snap.signed.version, seen.get("snapshot"))?;
    check_not_expired("snapshot", snap.signed.expires, now)?;
    for (role, meta) in &snap.signed.meta {
        if let Some(v) = meta.version {
            check_version_not_older(role, v, seen.get(role))?;
        }
    }
    let targets_meta = snap
        .signed
        .meta
        .get("targets")
        .ok_or_else(|| NotaryError::malformed("snapshot", "no meta for targets"))?;
    if let Some(root_meta) = snap.signed.meta.get("root") {
        check_file("root", "snapshot", &bytes.root, root_meta)?;
    }
    expires.insert("snapshot".to_owned(), snap.signed.expires);
    versions.set("snapshot", snap.signed.version);

    // ---- targets ----
    require_bytes("targets", &bytes.targets)?;
    check_file("targets", "snapshot", &bytes.targets, targets_meta)?;
    let tg = parse_doc::<Targets>("targets", &bytes.targets)?;
    check_targets_structure("targets", &tg.signed)?;
    check_signatures(
        "targets",
        &tg,
        &top_role_keys(root, &ring, "targets"),
        top_threshold(root, "targets"),
    )?;
    check_listed_version("targets", "snapshot", tg.signed.version, targets_meta)?;
    check_version_not_older("targets", tg.signed.version, seen.get("targets"))?;
    check_not_expired("targets", tg.signed.expires, now)?;
    expires.insert("targets".to_owned(), tg.signed.expires);
    versions.set("targets", tg.signed.version);

    // ---- delegations (breadth first, parents before children) ----
    let top_delegations = tg.signed.delegations.clone().unwrap_or_default();
    let top = TargetsRole {
        name: "targets".to_owned(),
        targets: tg.signed.targets,
        paths: vec![String::new()],
        children: top_delegations
            .roles
            .iter()
            .map(|r| r.name.clone())
            .collect(),
    };
    let mut states = BTreeMap::new();
    let mut declared = Vec::new();
    let mut queue: Vec<(Vec<String>, Delegations)> = vec![(top.paths.clone(), top_delegations)];
    let mut next = 0;
    while next < queue.len() {
        let (parent_paths, dels) = queue[next].clone();
        next += 1;
        let del_ring = KeyRing::new(&dels.keys);
        for decl in &dels.roles {
            declared.push(decl.name.clone());
            let paths = restrict_paths(&parent_paths, decl.paths.as_deref().unwrap_or(&[]));
            let supplied = bytes.delegations.get(&decl.name).or_else(|| {
                decl.name
                    .strip_prefix("targets/")
                    .and_then(|short| bytes.delegations.get(short))
            });
            let state = match supplied {
                None if snap.signed.meta.contains_key(&decl.name) => DelegationState::NotFetched,
                None => DelegationState::Unpublished,
                Some(b) => {
                    let keys = role_keys_from(&del_ring, &decl.keyids);
                    match verify_delegation(
                        &decl.name,
                        b,
                        &keys,
                        decl.threshold,
                        &snap.signed,
                        &seen,
                        now,
                    ) {
                        Ok(t) => {
                            expires.insert(decl.name.clone(), t.expires);
                            versions.set(&decl.name, t.version);
                            let child_dels = t.delegations.clone().unwrap_or_default();
                            let role = TargetsRole {
                                name: decl.name.clone(),
                                targets: t.targets,
                                paths: paths.clone(),
                                children: child_dels.roles.iter().map(|r| r.name.clone()).collect(),
                            };
                            if !child_dels.roles.is_empty() {
                                queue.push((paths, child_dels));
                            }
                            DelegationState::Verified(role)
                        }
                        Err(e) => DelegationState::Failed(e),
                    }
                }
            };
            states.insert(decl.name.clone(), state);
        }
    }

    Ok(VerifiedRepo {
        trusted_root: TrustedRoot {
            raw: bytes.root.clone(),
            root: root_doc.signed,
            ring,
        },
        versions,
        expires,
        top,
        delegations: states,
        declared,
    })
}

// ---------------------------------------------------------------------------
// root
// ---------------------------------------------------------------------------

fn verify_root(
    gun: &str,
    pinned: &PinnedKey,
    trusted: Option<&TrustedRoot>,
    intermediates: &BTreeMap<u64, Vec<u8>>,
    served_bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(Doc<Root>, KeyRing), NotaryError> {
    let (served, served_ring) = parse_root("root", served_bytes)?;
    let Some(trusted) = trusted else {
        // First contact: the pinned key must be a root key of this root,
        // issued for this GUN, and must have signed it.
        let role_keys = top_role_keys(&served.signed, &served_ring, "root");
        let pinned_keys: Vec<&TufKey> = role_keys
            .iter()
            .copied()
            .filter(|k| pinned.matches(k))
            .collect();
        if pinned_keys.is_empty() {
            return Err(NotaryError::RootKeyMismatch {
                reason: format!(
                    "the pinned key is not a root key of {gun} (root version {})",
                    served.signed.version
                ),
            });
        }
        let for_gun: Vec<&TufKey> = pinned_keys
            .iter()
            .copied()
            .filter(|k| cert_matches_gun(k, gun))
            .collect();
        if for_gun.is_empty() {
            let cn = pinned_keys
                .iter()
                .find_map(|k| k.cert.as_ref().and_then(|c| c.common_name.clone()))
                .unwrap_or_default();
            return Err(NotaryError::RootKeyMismatch {
                reason: format!(
                    "the root certificate with the pinned key is issued for {cn:?}, not for {gun}"
                ),
            });
        }
        let usable = root_keys_for_gun(&served.signed, &served_ring, gun);
        let threshold = top_threshold(&served.signed, "root");
        let valid = check_signatures("root", &served, &usable, threshold)?;
        if !for_gun.iter().any(|k| valid.contains(&k.id)) {
            return Err(NotaryError::SignatureInvalid {
                role: "root".to_owned(),
                reason: "root.json is not signed by the pinned root key".to_owned(),
            });
        }
        // The pinned key's certificate must be valid now, and the threshold
        // must be met by keys whose certificates are valid now.
        check_root_certificates(&usable, &valid, threshold, Some(&for_gun), now)?;
        return Ok((served, served_ring));
    };

    let served_version = served.signed.version;
    let trusted_version = trusted.root.version;
    if served_version < trusted_version {
        return Err(NotaryError::TrustDataRollback {
            role: "root".to_owned(),
            served: served_version,
            seen: trusted_version,
        });
    }

    let mut prev_root = trusted.root.clone();
    let mut prev_ring = trusted.ring.clone();
    let mut current: Option<(Doc<Root>, KeyRing)> = None;
    if served_version == trusted_version {
        verify_root_step(gun, &prev_root, &prev_ring, &served, &served_ring, None)?;
        current = Some((served, served_ring));
    } else {
        let mut served = Some((served, served_ring));
        for n in trusted_version + 1..=served_version {
            let (doc, ring) = if n == served_version {
                served.take().ok_or_else(|| {
                    NotaryError::malformed("root", "internal: served root consumed")
                })?
            } else {
                let label = format!("{n}.root");
                let b = intermediates
                    .get(&n)
                    .ok_or_else(|| NotaryError::TrustDataNotFound {
                        role: label.clone(),
                    })?;
                parse_root(&label, b)?
            };
            verify_root_step(gun, &prev_root, &prev_ring, &doc, &ring, Some(n))?;
            prev_root = doc.signed.clone();
            prev_ring = ring.clone();
            current = Some((doc, ring));
        }
    }
    let (doc, ring) = current.ok_or_else(|| NotaryError::malformed("root", "internal: no root"))?;
    let usable = root_keys_for_gun(&doc.signed, &ring, gun);
    let threshold = top_threshold(&doc.signed, "root");
    let valid = check_signatures("root", &doc, &usable, threshold)?;
    check_root_certificates(&usable, &valid, threshold, None, now)?;
    Ok((doc, ring))
}

/// One rotation step (TUF 5.3.4): `new` must be signed by a threshold of the
/// previous root's root keys and by a threshold of its own, and (when
/// `expected_version` is given) carry exactly that version.
fn verify_root_step(
    gun: &str,
    prev: &Root,
    prev_ring: &KeyRing,
    new: &Doc<Root>,
    new_ring: &KeyRing,
    expected_version: Option<u64>,
) -> Result<(), NotaryError> {
    if let Some(n) = expected_version
        && new.signed.version != n
    {
        return Err(NotaryError::malformed(
            "root",
            format!(
                "{n}.root.json has version {}, expected {n}",
                new.signed.version
            ),
        ));
    }
    let label = format!("version {}", new.signed.version);
    let prev_keys = root_keys_for_gun(prev, prev_ring, gun);
    check_signatures("root", new, &prev_keys, top_threshold(prev, "root")).map_err(
        |e| match e {
            NotaryError::SignatureInvalid { role, .. } => NotaryError::SignatureInvalid {
                role,
                reason: format!("root {label} is not signed by the previously trusted root keys"),
            },
            other => other,
        },
    )?;
    let own_keys = root_keys_for_gun(&new.signed, new_ring, gun);
    check_signatures("root", new, &own_keys, top_threshold(&new.signed, "root")).map_err(|e| {
        match e {
            NotaryError::SignatureInvalid { role, .. } => NotaryError::SignatureInvalid {
                role,
                reason: format!("root {label} is not signed by its own root keys"),
            },
            other => other,
        }
    })?;
    Ok(())
}

/// Among the keys with valid signatures, those with a certificate must be
/// valid at `now` (Notary ignores expired root certificates); the threshold
/// (and, on first contact, the pinned key) must still be met without the
/// others.
fn check_root_certificates(
    usable: &[&TufKey],
    valid: &BTreeSet<String>,
    threshold: u64,
    pinned: Option<&[&TufKey]>,
    now: DateTime<Utc>,
) -> Result<(), NotaryError> {
    let signed: Vec<&TufKey> = usable
        .iter()
        .copied()
        .filter(|k| valid.contains(&k.id))
        .collect();
    let current = |k: &&TufKey| k.cert.as_ref().is_none_or(|c| c.valid_at(now));
    let still_valid = signed.iter().filter(|k| current(k)).count() as u64;
    let pinned_ok = pinned.is_none_or(|p| p.iter().any(|k| valid.contains(&k.id) && current(k)));
    if still_valid >= threshold && pinned_ok {
        return Ok(());
    }
    let stale = signed
        .iter()
        .filter(|k| !current(k))
        .find_map(|k| k.cert.as_ref())
        .ok_or_else(|| NotaryError::malformed("root", "internal: no stale certificate"))?;
    Err(NotaryError::CertificateNotValid {
        role: "root".to_owned(),
        not_before: rfc3339(stale.not_before),
        not_after: rfc3339(stale.not_after),
    })
}

fn parse_root(label: &str, bytes: &[u8]) -> Result<(Doc<Root>, KeyRing), NotaryError> {
    let doc = parse_doc::<Root>(label, bytes)?;
    let r = &doc.signed;
    if r.type_ != "Root" {
        return Err(NotaryError::malformed(
            label,
            format!("_type is {:?}, expected \"Root\"", r.type_),
        ));
    }
    if r.version < 1 {
        return Err(NotaryError::malformed(label, "version must be at least 1"));
    }
    for role in TOP_ROLES {
        let spec = r
            .roles
            .get(role)
            .ok_or_else(|| NotaryError::malformed(label, format!("no {role} role")))?;
        check_role_spec(label, role, spec.threshold, &spec.keyids, &r.keys)?;
    }
    let ring = KeyRing::new(&r.keys);
    Ok((doc, ring))
}

fn check_role_spec(
    label: &str,
    role: &str,
    threshold: u64,
    keyids: &[String],
    keys: &BTreeMap<String, KeyJson>,
) -> Result<(), NotaryError> {
    if threshold < 1 {
        return Err(NotaryError::malformed(
            label,
            format!("threshold of {role} is 0"),
        ));
    }
    if let Some(missing) = keyids.iter().find(|id| !keys.contains_key(*id)) {
        return Err(NotaryError::malformed(
            label,
            format!("{role} lists key {missing} that is not among the keys"),
        ));
    }
    Ok(())
}

/// Notary's `MatchCNToGun`: CN equals the GUN, or CN ends in `*` and the GUN
/// starts with what precedes the stars.
fn cn_matches_gun(cn: &str, gun: &str) -> bool {
    match cn.strip_suffix('*') {
        Some(_) => gun.starts_with(cn.trim_end_matches('*')),
        None => cn == gun,
    }
}

fn cert_matches_gun(key: &TufKey, gun: &str) -> bool {
    match &key.cert {
        None => true,
        Some(c) => c
            .common_name
            .as_deref()
            .is_some_and(|cn| cn_matches_gun(cn, gun)),
    }
}

fn root_keys_for_gun<'a>(root: &Root, ring: &'a KeyRing, gun: &str) -> Vec<&'a TufKey> {
    top_role_keys(root, ring, "root")
        .into_iter()
        .filter(|k| cert_matches_gun(k, gun))
        .collect()
}

// ---------------------------------------------------------------------------
// keys and signatures
// ---------------------------------------------------------------------------

/// The usable keys of one `keys` map: parsed, supported, and listed under
/// the id recomputed from their content (keys listed under another id are
/// left out, as Notary refuses them).
#[derive(Debug, Clone, Default)]
struct KeyRing(BTreeMap<String, TufKey>);

impl KeyRing {
    fn new(keys: &BTreeMap<String, KeyJson>) -> Self {
        Self(
            keys.iter()
                .filter_map(|(id, json)| {
                    let key = TufKey::parse(json).ok()?;
                    (key.id == *id).then(|| (id.clone(), key))
                })
                .collect(),
        )
    }
}

fn role_keys_from<'a>(ring: &'a KeyRing, keyids: &[String]) -> Vec<&'a TufKey> {
    let mut seen = BTreeSet::new();
    keyids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .filter_map(|id| ring.0.get(id))
        .collect()
}

fn top_role_keys<'a>(root: &Root, ring: &'a KeyRing, role: &str) -> Vec<&'a TufKey> {
    root.roles
        .get(role)
        .map(|r: &RoleKeys| role_keys_from(ring, &r.keyids))
        .unwrap_or_default()
}

fn top_threshold(root: &Root, role: &str) -> u64 {
    // parse_root guarantees the role exists with threshold >= 1; u64::MAX
    // can never be met, should that ever not hold.
    root.roles.get(role).map_or(u64::MAX, |r| r.threshold)
}

fn role_key_material(root: &Root, ring: &KeyRing, role: &str) -> (BTreeSet<Vec<u8>>, u64) {
    (
        top_role_keys(root, ring, role)
            .iter()
            .map(|k| k.spki_der.clone())
            .collect(),
        top_threshold(root, role),
    )
}

/// Count distinct keys (by key id and by public key) among `keys` with a
/// valid signature over the canonical `signed`. Each key is tried at most
/// once (its first signature), which bounds the work by the number of keys.
fn check_signatures<T>(
    role: &str,
    doc: &Doc<T>,
    keys: &[&TufKey],
    threshold: u64,
) -> Result<BTreeSet<String>, NotaryError> {
    let mut tried = BTreeSet::new();
    let mut valid_ids = BTreeSet::new();
    let mut valid_spki = BTreeSet::new();
    for sig in &doc.signatures {
        let Some(key) = keys.iter().find(|k| k.id == sig.keyid) else {
            continue;
        };
        if !tried.insert(key.id.clone()) {
            continue;
        }
        let Ok(raw) = STANDARD.decode(sig.sig.as_bytes()) else {
            continue;
        };
        if key.verify(&sig.method, &raw, &doc.canonical) && valid_spki.insert(key.spki_der.clone())
        {
            valid_ids.insert(key.id.clone());
        }
    }
    let valid = valid_ids.len() as u64;
    if valid == 0 {
        let reason = if doc.signatures.is_empty() {
            "no signatures".to_owned()
        } else if tried.is_empty() {
            "no signature is by a key of the role".to_owned()
        } else {
            String::new()
        };
        return Err(NotaryError::SignatureInvalid {
            role: role.to_owned(),
            reason,
        });
    }
    if valid < threshold {
        return Err(NotaryError::ThresholdNotMet {
            role: role.to_owned(),
            valid,
            threshold,
        });
    }
    Ok(valid_ids)
}

// ---------------------------------------------------------------------------
// documents, hashes, versions, expiry
// ---------------------------------------------------------------------------

/// A parsed metadata file: the typed `signed`, its canonical bytes (what the
/// signatures cover) and the signatures. The typed value is read from the
/// same JSON value that was canonicalised, so what is interpreted is what is
/// verified.
#[derive(Debug, Clone)]
struct Doc<T> {
    signed: T,
    canonical: Vec<u8>,
    signatures: Vec<super::model::Signature>,
}

fn require_bytes(role: &str, bytes: &[u8]) -> Result<(), NotaryError> {
    if bytes.is_empty() {
        return Err(NotaryError::TrustDataNotFound {
            role: role.to_owned(),
        });
    }
    Ok(())
}

fn parse_doc<T: DeserializeOwned>(role: &str, bytes: &[u8]) -> Result<Doc<T>, NotaryError> {
    require_bytes(role, bytes)?;
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| NotaryError::malformed(role, format!("not valid metadata JSON: {e}")))?;
    let canonical =
        canonicalize(&env.signed).map_err(|e| NotaryError::malformed(role, e.to_string()))?;
    let signed: T = serde_json::from_value(env.signed)
        .map_err(|e| NotaryError::malformed(role, format!("invalid signed part: {e}")))?;
    Ok(Doc {
        signed,
        canonical,
        signatures: env.signatures,
    })
}

fn check_meta_list(role: &str, type_: &str, m: &MetaList) -> Result<(), NotaryError> {
    if m.type_ != type_ {
        return Err(NotaryError::malformed(
            role,
            format!("_type is {:?}, expected {type_:?}", m.type_),
        ));
    }
    if m.version < 1 {
        return Err(NotaryError::malformed(role, "version must be at least 1"));
    }
    Ok(())
}

/// Notary's `isValidTargetsStructure` (and `IsDelegation` for each declared
/// role): `_type`, version, and delegations that are valid direct children
/// with known keys and a positive threshold.
fn check_targets_structure(role: &str, t: &Targets) -> Result<(), NotaryError> {
    if t.type_ != "Targets" {
        return Err(NotaryError::malformed(
            role,
            format!("_type is {:?}, expected \"Targets\"", t.type_),
        ));
    }
    if t.version < 1 {
        return Err(NotaryError::malformed(role, "version must be at least 1"));
    }
    if let Some(d) = &t.delegations {
        let mut names = BTreeSet::new();
        for r in &d.roles {
            if !is_delegation_name(&r.name) || parent_of(&r.name) != role {
                return Err(NotaryError::malformed(
                    role,
                    format!("invalid delegated role name {:?}", r.name),
                ));
            }
            if !names.insert(r.name.as_str()) {
                return Err(NotaryError::malformed(
                    role,
                    format!("delegated role {:?} declared twice", r.name),
                ));
            }
            check_role_spec(role, &r.name, r.threshold, &r.keyids, &d.keys)?;
        }
    }
    Ok(())
}

/// Notary's `IsDelegation`: `targets/...`, only `[-a-z0-9_/]`, shorter than
/// 256 bytes, and already clean as a path (no empty, `.` or `..` segment, no
/// trailing slash).
fn is_delegation_name(name: &str) -> bool {
    name.len() < 256
        && name.starts_with("targets/")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_/".contains(&b))
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn parent_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Notary's `RestrictDelegationPathPrefixes`: keep the child's paths that
/// have one of the parent's paths as a prefix.
fn restrict_paths(parent: &[String], child: &[String]) -> Vec<String> {
    child
        .iter()
        .filter(|c| parent.iter().any(|p| c.starts_with(p.as_str())))
        .cloned()
        .collect()
}

/// The served bytes must have the listed length and every listed sha256 /
/// sha512 hash (at least one of them must be listed).
fn check_file(
    role: &str,
    listed_by: &str,
    bytes: &[u8],
    meta: &FileMeta,
) -> Result<(), NotaryError> {
    let mismatch = |reason: String| NotaryError::HashMismatch {
        role: role.to_owned(),
        listed_by: listed_by.to_owned(),
        reason,
    };
    if let Some(length) = meta.length
        && bytes.len() as u64 != length
    {
        return Err(mismatch(format!(
            "length {} but {length} listed",
            bytes.len()
        )));
    }
    let mut checked = 0;
    for (alg, b64) in &meta.hashes {
        let actual: Vec<u8> = match alg.as_str() {
            "sha256" => Sha256::digest(bytes).to_vec(),
            "sha512" => Sha512::digest(bytes).to_vec(),
            _ => continue,
        };
        let expected = STANDARD.decode(b64.as_bytes()).map_err(|_| {
            NotaryError::malformed(listed_by, format!("{alg} of {role} is not base64"))
        })?;
        if expected != actual {
            return Err(mismatch(format!("{alg} differs")));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(NotaryError::malformed(
            listed_by,
            format!("no sha256 or sha512 hash listed for {role}"),
        ));
    }
    Ok(())
}

/// The version listed by the parent (TUF style; Notary lists none) must be
/// the file's version.
fn check_listed_version(
    role: &str,
    listed_by: &str,
    version: u64,
    meta: &FileMeta,
) -> Result<(), NotaryError> {
    match meta.version {
        Some(v) if v != version => Err(NotaryError::HashMismatch {
            role: role.to_owned(),
            listed_by: listed_by.to_owned(),
            reason: format!("version {version} but {v} listed"),
        }),
        _ => Ok(()),
    }
}

fn check_version_not_older(role: &str, served: u64, seen: Option<u64>) -> Result<(), NotaryError> {
    match seen {
        Some(seen) if served < seen => Err(NotaryError::TrustDataRollback {
            role: role.to_owned(),
            served,
            seen,
        }),
        _ => Ok(()),
    }
}

fn check_not_expired(
    role: &str,
    expires: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), NotaryError> {
    if expires <= now {
        return Err(NotaryError::Expired {
            role: role.to_owned(),
            expires: rfc3339(expires),
        });
    }
    Ok(())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn verify_delegation(
    name: &str,
    bytes: &[u8],
    keys: &[&TufKey],
    threshold: u64,
    snapshot: &MetaList,
    seen: &RoleVersions,
    now: DateTime<Utc>,
) -> Result<Targets, NotaryError> {
    require_bytes(name, bytes)?;
    let meta = snapshot
        .meta
        .get(name)
        .ok_or_else(|| NotaryError::HashMismatch {
            role: name.to_owned(),
            listed_by: "snapshot".to_owned(),
            reason: "not listed in the snapshot".to_owned(),
        })?;
    check_file(name, "snapshot", bytes, meta)?;
    let doc = parse_doc::<Targets>(name, bytes)?;
    check_targets_structure(name, &doc.signed)?;
    check_signatures(name, &doc, keys, threshold)?;
    check_listed_version(name, "snapshot", doc.signed.version, meta)?;
    check_version_not_older(name, doc.signed.version, seen.get(name))?;
    check_not_expired(name, doc.signed.expires, now)?;
    Ok(doc.signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegation_names_follow_notary() {
        assert!(is_delegation_name("targets/releases"));
        assert!(is_delegation_name("targets/a/b-c_d"));
        assert!(!is_delegation_name("targets"));
        assert!(!is_delegation_name("targets/"));
        assert!(!is_delegation_name("targets/A"));
        assert!(!is_delegation_name("targets//x"));
        assert!(!is_delegation_name("targets/./x"));
        assert!(!is_delegation_name("targets/x/.."));
        assert!(!is_delegation_name(&format!("targets/{}", "a".repeat(250))));
        assert_eq!(parent_of("targets/a/b"), "targets/a");
        assert_eq!(parent_of("targets/a"), "targets");
    }

    #[test]
    fn paths_are_prefixes_restricted_by_parent() {
        let all = vec![String::new()];
        assert_eq!(restrict_paths(&all, &["".into()]), vec![String::new()]);
        assert!(restrict_paths(&all, &[]).is_empty());
        assert_eq!(
            restrict_paths(&["v".into()], &["".into(), "v1".into(), "w".into()]),
            vec!["v1".to_owned()]
        );
    }

    #[test]
    fn cn_wildcards_like_notary() {
        assert!(cn_matches_gun("docker.io/a/b", "docker.io/a/b"));
        assert!(!cn_matches_gun("docker.io/a/b", "docker.io/a/bc"));
        assert!(cn_matches_gun("docker.io/a/*", "docker.io/a/bc"));
        assert!(cn_matches_gun("*", "anything"));
        assert!(!cn_matches_gun("docker.io/b/*", "docker.io/a/bc"));
    }

    #[test]
    fn digests_parse() {
        assert!(parse_digest(&format!("sha256:{}", "ab".repeat(32))).is_some());
        assert!(parse_digest(&"ab".repeat(32)).is_none());
        assert!(parse_digest("sha256:abc").is_none());
        assert!(parse_digest(&format!("sha512:{}", "ab".repeat(32))).is_none());
    }

    #[test]
    fn full_names() {
        assert_eq!(full_role_name("releases"), "targets/releases");
        assert_eq!(full_role_name("targets/releases"), "targets/releases");
        assert_eq!(full_role_name("targets"), "targets");
        assert_eq!(full_role_name("releases/qa"), "targets/releases/qa");
    }
}
