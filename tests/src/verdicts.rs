//! Assertions over `portcullis-verifier verify --json` results, shared by
//! the validator suites.

use serde_json::{Value, json};

use crate::procs::verify_json;
use crate::signer::PushedImage;

/// The one result of verifying `image` under `config` (YAML text).
pub fn verdict(config: &str, image: &str) -> Value {
    let (_, results, stderr) = verify_json(config, &[image], &[]);
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"))
}

/// Allowed, at the image's digest, pinned to it.
pub fn assert_allowed(r: &Value, image: &PushedImage) {
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], json!(image.digest), "{r}");
    assert_eq!(
        r["reference"],
        json!(format!("{}@{}", image.reference, image.digest)),
        "{r}"
    );
}

/// Denied with `reason` (a prefix of the reason text) and a message
/// containing `part`.
pub fn assert_denied(r: &Value, reason: &str, part: &str) {
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["reason"].as_str().unwrap_or_default().starts_with(reason),
        "want {reason}: {r}"
    );
    assert!(
        r["message"].as_str().unwrap_or_default().contains(part),
        "want {part:?} in the message: {r}"
    );
}
