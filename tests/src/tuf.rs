//! TUF repositories holding a Sigstore `trusted_root.json`, built by the
//! independent fixture script `tests/fixtures/tuf/mktuf.py`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::signer::{python, workspace_root};

/// Builds a TUF repository at `out` publishing `trusted_root` (keys derived
/// from a fixed seed, so rebuilding with `--force` keeps the same root);
/// returns the script's JSON (paths and `file://` URLs).
pub fn mktuf(out: &Path, trusted_root: &Path, extra: &[&str]) -> Value {
    let result = Command::new(python())
        .arg(workspace_root().join("tests/fixtures/tuf/mktuf.py"))
        .arg("--out")
        .arg(out)
        .arg("--trusted-root")
        .arg(trusted_root)
        .args(["--seed", "portcullis"])
        .args(extra)
        .output()
        .expect("mktuf");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_slice(&result.stdout).expect("mktuf JSON")
}

/// `key` from mktuf's output (top level, `paths` or `urls`).
pub fn find(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .or_else(|| v["paths"][key].as_str())
        .or_else(|| v["urls"][key].as_str())
        .unwrap_or_else(|| panic!("mktuf output has no {key}: {v}"))
        .to_string()
}

/// The validator `host` settings for the mirror mktuf built.
pub fn mirror_host(repo: &Value) -> Value {
    serde_json::json!({
        "tufMirror": find(repo, "metadata_url"),
        "tufTargets": find(repo, "targets_url"),
        "tufRoot": find(repo, "root"),
    })
}
