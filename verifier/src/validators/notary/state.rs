//! What a verifier remembers per GUN and pinned key: the root it trusts
//! (for rotation) and the highest version seen of every role (rollback
//! protection). Kept in process and, with Redis, in the shared cache: read
//! at first use of a GUN, written whenever it advances.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tuf::{PinnedKey, RoleVersions, TrustedRoot};
use crate::cache::SharedRecords;

/// The remembered state of one GUN.
#[derive(Debug, Clone, Default)]
pub(crate) struct Remembered {
    /// The root verified last.
    pub(crate) trusted_root: Option<TrustedRoot>,
    /// The highest version seen of each role.
    pub(crate) versions: RoleVersions,
}

#[derive(Serialize, Deserialize)]
struct Shared {
    root: String,
    versions: std::collections::BTreeMap<String, u64>,
}

/// Remembered state of every GUN seen: in process, and in the shared
/// records (Redis) when there are any.
#[derive(Debug)]
pub(super) struct TrustState {
    by_gun: Mutex<HashMap<String, Remembered>>,
    shared: SharedRecords,
}

/// How long the shared copy lives (refreshed on every advance).
const SHARED_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn key(gun: &str, pinned: &PinnedKey) -> String {
    let mut h = Sha256::new();
    h.update(gun.as_bytes());
    h.update(b"\0");
    h.update(pinned.spki_der());
    format!("pc:v1:notary-state:{}", hex::encode(h.finalize()))
}

impl TrustState {
    /// Remembers nothing yet; shares through `shared`.
    pub(super) fn new(shared: SharedRecords) -> Self {
        TrustState {
            by_gun: Mutex::default(),
            shared,
        }
    }

    /// The trusted root's version, if any (to know which `N.root.json` to
    /// fetch).
    pub(crate) fn trusted_root_version(&self, gun: &str, pinned: &PinnedKey) -> Option<u64> {
        let map = self.by_gun.lock().ok()?;
        map.get(&key(gun, pinned))?
            .trusted_root
            .as_ref()
            .map(TrustedRoot::version)
    }

    /// The remembered state: in process, else from the shared cache.
    pub(crate) async fn load(&self, gun: &str, pinned: &PinnedKey) -> Remembered {
        let k = key(gun, pinned);
        if let Some(r) = self.by_gun.lock().ok().and_then(|m| m.get(&k).cloned()) {
            return r;
        }
        let Some(bytes) = self.shared.get(&k).await else {
            return Remembered::default();
        };
        let Ok(shared) = serde_json::from_slice::<Shared>(&bytes) else {
            return Remembered::default();
        };
        let root = base64::engine::general_purpose::STANDARD
            .decode(&shared.root)
            .ok()
            .and_then(|b| TrustedRoot::from_bytes(&b).ok());
        let mut versions = RoleVersions::new();
        for (role, v) in shared.versions {
            versions.set(&role, v);
        }
        let remembered = Remembered {
            trusted_root: root,
            versions,
        };
        if let Ok(mut m) = self.by_gun.lock() {
            m.entry(k).or_insert_with(|| remembered.clone());
        }
        remembered
    }

    /// Remembers a verification's trusted root and versions (never lowering
    /// a version), and shares them when they advanced.
    pub(crate) async fn store(
        &self,
        gun: &str,
        pinned: &PinnedKey,
        root: &TrustedRoot,
        versions: &RoleVersions,
    ) {
        let k = key(gun, pinned);
        let advanced = {
            let Ok(mut m) = self.by_gun.lock() else {
                return;
            };
            let entry = m.entry(k.clone()).or_default();
            let mut advanced = entry
                .trusted_root
                .as_ref()
                .is_none_or(|r| r.version() < root.version());
            if advanced {
                entry.trusted_root = Some(root.clone());
            }
            for (role, v) in versions.iter() {
                if entry.versions.get(role).is_none_or(|old| old < v) {
                    entry.versions.set(role, v);
                    advanced = true;
                }
            }
            advanced.then(|| entry.clone())
        };
        if let Some(state) = advanced {
            let shared = Shared {
                root: base64::engine::general_purpose::STANDARD.encode(root.as_bytes()),
                versions: state
                    .versions
                    .iter()
                    .map(|(r, v)| (r.to_string(), v))
                    .collect(),
            };
            if let Ok(bytes) = serde_json::to_vec(&shared) {
                self.shared.put(&k, &bytes, SHARED_TTL).await;
            }
        }
    }
}
