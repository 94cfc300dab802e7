//! The Sigstore public-good TUF repository, shipped inside the binary: a
//! snapshot of `sigstore/root-signing` (see `verifier/sigstore-trust/public-good`),
//! loaded through TUF with tough from the pinned root v12 (tough cannot
//! verify roots v1–v11). It is the default trust for keyless roots when the
//! config names no Fulcio/Rekor/CT material and no TUF mirror.
//!
//! A shipped copy cannot be fresh: its timestamp expired days after it was
//! taken. Its signatures, thresholds, versions and hashes are all verified
//! from the pinned root; only freshness is waived (see
//! [`crate::load_shipped`]). Configure `host.tufMirror` to get
//! freshness too.

use chrono::{DateTime, Utc};

use crate::{SigstoreTrust, TrustRootError, load_shipped};

/// The pinned TUF root of the public-good instance (version 12).
pub const ROOT_V12: &[u8] = include_bytes!("../public-good/metadata/12.root.json");

macro_rules! shipped {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!("../public-good/", $path)) as &[u8])),*]
    };
}

/// Every file of the shipped snapshot, by path under the repository.
const FILES: &[(&str, &[u8])] = shipped!(
    "metadata/1.root.json",
    "metadata/2.root.json",
    "metadata/3.root.json",
    "metadata/4.root.json",
    "metadata/5.root.json",
    "metadata/6.root.json",
    "metadata/7.root.json",
    "metadata/8.root.json",
    "metadata/9.root.json",
    "metadata/10.root.json",
    "metadata/11.root.json",
    "metadata/12.root.json",
    "metadata/13.root.json",
    "metadata/14.root.json",
    "metadata/15.root.json",
    "metadata/14.targets.json",
    "metadata/165.snapshot.json",
    "metadata/8.registry.npmjs.org.json",
    "metadata/timestamp.json",
    "targets/6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66.trusted_root.json",
);

/// Loads the shipped public-good trust root (written to a temporary
/// directory for tough's file transport, then verified).
pub async fn load(now: DateTime<Utc>) -> Result<SigstoreTrust, TrustRootError> {
    let dir = tempdir_for_shipped()?;
    for (path, bytes) in FILES {
        let target = dir.path().join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| TrustRootError::Io {
                path: parent.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        std::fs::write(&target, bytes).map_err(|e| TrustRootError::Io {
            path: target.clone(),
            message: e.to_string(),
        })?;
    }
    load_shipped(ROOT_V12, dir.path(), now).await
}

/// A private temporary directory, removed when dropped.
fn tempdir_for_shipped() -> Result<TempDir, TrustRootError> {
    let path = std::env::temp_dir().join(format!(
        "portcullis-sigstore-{}-{}",
        std::process::id(),
        now_nanos()
    ));
    std::fs::create_dir_all(&path).map_err(|e| TrustRootError::Io {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(TempDir(path))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
